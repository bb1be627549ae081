"""The depth dial reproduces nanochat's numbers (vocab 32768, seq 2048, head_dim 128, SSSL, ratio 10.5)."""
import pytest

from nanochat_core.model.sizing import B_REF, build_model_config, model_dim_for, plan_training

# depth: (dim, heads, total params, scaling params, FLOPs/token, batch, iterations)
NANOCHAT = {
    12: (768, 6, 286.3e6, 110.1e6, 7.809e8, 2 ** 19, 2205),
    20: (1280, 10, 896.5e6, 435.2e6, 2.945e9, 2 ** 20, 4357),
    24: (1536, 12, 1384.1e6, 729.8e6, 4.860e9, 2 ** 20, 7308),
    26: (1664, 13, 1681.8e6, 918.4e6, 6.088e9, 2 ** 20, 9196),
}


@pytest.mark.parametrize("depth", sorted(NANOCHAT))
def test_depth_dial_matches_nanochat(depth):
    dim, heads, total, scaling, flops, batch, iters = NANOCHAT[depth]
    plan = plan_training(depth, 32768)
    assert model_dim_for(depth) == (dim, heads)
    assert plan.model_config.n_embd == dim and plan.model_config.n_head == heads == plan.model_config.n_kv_head
    assert plan.param_counts["total"] == pytest.approx(total, rel=1e-3)
    assert plan.scaling_params == pytest.approx(scaling, rel=1e-3)
    assert plan.flops_per_token == pytest.approx(flops, rel=1e-3)
    assert plan.total_batch_size == batch
    assert plan.num_iterations == pytest.approx(iters, rel=1e-3)
    assert plan.horizon_source == "target_param_data_ratio"


def test_param_count_breakdown_d12():
    c = plan_training(12, 32768).param_counts
    assert c["wte"] == c["lm_head"] == 32768 * 768
    assert c["value_embeds"] == 6 * 32768 * 768  # layers 1, 3, ..., 11
    assert c["scalars"] == 24
    assert c["total"] == sum(v for k, v in c.items() if k != "total")


def test_reference_lrs_and_weight_decay_at_d12():
    plan = plan_training(12, 32768)
    assert plan.total_batch_size == B_REF and plan.batch_lr_scale == 1.0
    assert plan.matrix_lr == pytest.approx(0.02) and plan.weight_decay == pytest.approx(0.28)


def test_lr_and_wd_scale_with_batch():
    """d20 trains at 2^20 tokens, twice nanochat's 2^19 reference: LRs times sqrt(2); weight decay
    0.28 * sqrt(2) * D_REF / D, with nanochat's d12 and d20 scaling params (110.1M, 435.2M) in D = 10.5 N."""
    plan = plan_training(20, 32768)
    assert plan.embedding_lr == pytest.approx(0.42426, rel=1e-5) and plan.matrix_lr == pytest.approx(0.028284, rel=1e-5)
    assert plan.weight_decay == pytest.approx(0.28 * 2 ** 0.5 * 110.1e6 / 435.2e6, rel=1e-3)  # 0.1002


def test_horizon_precedence():
    # d12 at 7.809e8 FLOPs/token and 2^19 tokens a step: 4e16 FLOPs is 97.7 steps, rounded to 98
    flops_plan = plan_training(12, 32768, target_flops=4e16)
    assert flops_plan.horizon_source == "target_flops" and flops_plan.num_iterations == 98
    it_plan = plan_training(12, 32768, num_iterations=7, target_flops=4e16)
    assert it_plan.horizon_source == "num_iterations" and it_plan.num_iterations == 7
    # ratio 10.5 x 110.1M params at 2^16 tokens a step: 17,640 steps (nanochat's 2205 d12 steps, times 8)
    fixed = plan_training(12, 32768, total_batch_size=2 ** 16)
    assert fixed.horizon_source == "target_param_data_ratio" and fixed.total_batch_size == 2 ** 16
    assert fixed.num_iterations == pytest.approx(17640, abs=2)


def test_model_dim_rounds_up_and_vocab_pads():
    assert model_dim_for(4, 64, 64) == (256, 4)
    assert model_dim_for(3, 50, 128) == (256, 2)  # 150 rounds up to 256
    cfg = build_model_config(4, 4097, 512, 64, 64, "L")
    assert cfg.padded_vocab_size == 4160 and cfg.window_pattern == "L"


def test_matmul_peak_probe_returns_a_rate():
    import torch

    from nanochat_core.common.flops_probe import measure_matmul_peak
    rate = measure_matmul_peak("cpu", torch.float32, seconds=0.2, size=256)
    assert 1e8 < rate < 1e13  # FLOP/s: a CPU core does between 0.1 GFLOP/s and 10 TFLOP/s

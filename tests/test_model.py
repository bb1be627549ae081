"""GPT: shapes, nanochat's state-dict layout, loading, overfitting, KV-cache consistency, windows."""
import pytest
import torch

from nanochat_core.model.kv_cache import KVCache
from nanochat_core.model.gpt import GPT, GPTConfig, StateDictMismatchError, clean_state_dict, compute_window_sizes


pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(sequence_len=64, vocab_size=300, n_layer=2, n_head=4, n_kv_head=4, n_embd=64, window_pattern="SSSL")


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**TINY, **overrides}))
    model.init_weights()
    return model


def randomize_(model, seed=1):
    """init_weights zeroes the output projections; random weights make the consistency tests meaningful."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def nanochat_shapes(n_layer, n_head, n_kv_head, d, vocab):
    """nanochat's state-dict table, written out from nanochat's nanochat/gpt.py (not derived from our model)."""
    hd, V = d // n_head, -(-vocab // 64) * 64
    sd = {"resid_lambdas": (n_layer,), "x0_lambdas": (n_layer,), "transformer.wte.weight": (V, d),
          "lm_head.weight": (V, d)}
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        sd[p + "attn.c_q.weight"] = (n_head * hd, d)
        sd[p + "attn.c_k.weight"] = (n_kv_head * hd, d)
        sd[p + "attn.c_v.weight"] = (n_kv_head * hd, d)
        sd[p + "attn.c_proj.weight"] = (d, d)
        sd[p + "mlp.c_fc.weight"] = (4 * d, d)
        sd[p + "mlp.c_proj.weight"] = (d, 4 * d)
        if i % 2 == (n_layer - 1) % 2:
            sd[p + "attn.ve_gate.weight"] = (n_kv_head, 12)
            sd[f"value_embeds.{i}.weight"] = (V, n_kv_head * hd)
    return sd


def test_forward_backward_shapes():
    model = tiny()
    idx = torch.randint(0, 300, (2, 16))
    logits = model(idx)
    assert logits.shape == (2, 16, 300) and logits.dtype == torch.float32
    assert logits.abs().max() <= 15.0  # softcap
    targets = idx.clone()
    targets[0, :4] = -1  # ignored positions
    loss = model(idx, targets)
    assert loss.ndim == 0
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    per_tok = model(idx, targets, loss_reduction="none")
    assert per_tok.shape == (2, 16) and (per_tok[0, :4] == 0).all()


def test_state_dict_has_nanochat_names_and_shapes():
    cfg = dict(sequence_len=64, vocab_size=300, n_layer=3, n_head=4, n_kv_head=2, n_embd=64)
    expected = nanochat_shapes(3, 4, 2, 64, 300)
    got = {k: tuple(v.shape) for k, v in GPT(GPTConfig(**cfg)).state_dict().items()}
    assert got == expected
    # a nanochat-style checkpoint (bf16 embeddings, compiled-model prefix) loads strictly into fp32 weights
    sd = {"_orig_mod." + k: torch.randn(s, dtype=torch.bfloat16 if "wte" in k else torch.float32)
          for k, s in expected.items()}
    model = GPT(GPTConfig(**cfg))
    model.load_state_dict(sd)
    assert model.transformer.wte.weight.dtype == torch.float32
    assert torch.equal(model.lm_head.weight, sd["_orig_mod.lm_head.weight"])


def test_clean_state_dict_strips_compile_prefix():
    assert set(clean_state_dict({"_orig_mod.a": 1, "b": 2})) == {"a", "b"}


def test_shape_mismatch_names_key_and_shapes():
    sd = tiny().state_dict()
    sd["transformer.h.0.mlp.c_fc.weight"] = torch.zeros(128, 64)
    with pytest.raises(StateDictMismatchError) as err:
        tiny().load_state_dict(sd, source="model_000010.pt")
    msg = str(err.value)
    assert "transformer.h.0.mlp.c_fc.weight" in msg and "(256, 64)" in msg and "(128, 64)" in msg
    assert "model_000010.pt" in msg
    del sd["transformer.h.0.mlp.c_fc.weight"]
    with pytest.raises(StateDictMismatchError, match="missing keys: transformer.h.0.mlp.c_fc.weight"):
        tiny().load_state_dict(sd)


def test_meta_init_then_to_empty():
    with torch.device("meta"):
        model = GPT(GPTConfig(**TINY))
    model.to_empty(device="cpu")
    model.init_weights()
    assert torch.isfinite(model(torch.randint(0, 300, (1, 8)))).all()


def test_windows_per_layer():
    ws = compute_window_sizes(GPTConfig(sequence_len=2048, n_layer=12))
    assert ws == [768, 768, 768, 2048] * 3
    assert compute_window_sizes(GPTConfig(sequence_len=2048, n_layer=5)) == [768, 768, 768, 2048, 2048]
    assert compute_window_sizes(GPTConfig(sequence_len=2048, n_layer=3, window_pattern="SL")) == [768, 2048, 2048]
    assert compute_window_sizes(GPTConfig(sequence_len=512, n_layer=2, window_pattern="L")) == [512, 512]
    assert compute_window_sizes(GPTConfig(sequence_len=4096, n_layer=2)) == [1408, 4096]


def test_sliding_window_limits_what_a_query_sees():
    model = tiny(n_layer=1)
    randomize_(model)
    w = 4
    model.window_sizes = [w]
    idx = torch.randint(0, 300, (1, 20))
    base = model(idx)[0, 15]
    far, near = idx.clone(), idx.clone()
    far[0, 15 - w - 1] = (far[0, 15 - w - 1] + 1) % 300
    near[0, 15 - w] = (near[0, 15 - w] + 1) % 300
    assert torch.allclose(model(far)[0, 15], base)
    assert not torch.allclose(model(near)[0, 15], base)


@pytest.mark.parametrize("windows,n_kv_head", [(None, 4), ([5, 100], 4), ([3, 7], 2)])
def test_kv_cache_decode_matches_full_forward(windows, n_kv_head):
    model = tiny(n_kv_head=n_kv_head)
    randomize_(model)
    if windows:
        model.window_sizes = windows
    idx = torch.randint(0, 300, (2, 24))
    full = model(idx)
    cache = KVCache.for_model(model, batch_size=2, seq_len=8)  # too small on purpose: it grows
    outs = [model(idx[:, :10], kv_cache=cache)]  # prefill
    outs += [model(idx[:, t:t + 1], kv_cache=cache) for t in range(10, 20)]  # decode
    outs.append(model(idx[:, 20:], kv_cache=cache))  # a multi-token chunk on top of the cache
    assert cache.get_pos() == 24
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-4, rtol=1e-4)


def test_rotary_extends_beyond_sequence_len():
    model = tiny()
    logits = model(torch.randint(0, 300, (1, 150)))  # sequence_len is 64
    assert logits.shape == (1, 150, 300) and torch.isfinite(logits).all()


def test_caches_built_in_inference_mode_work_in_training():
    """Rotary tables and masks first built under inference_mode must give a training step the very
    gradients of a twin model that only ever ran outside it."""
    idx = torch.randint(0, 300, (1, 100), generator=torch.Generator().manual_seed(2))
    grads = []
    for warm_up_in_inference_mode in (True, False):
        model = tiny()
        randomize_(model)  # init_weights zeroes the output projections: most gradients would be zero
        model.window_sizes = [5, 64]
        if warm_up_in_inference_mode:
            with torch.inference_mode():
                model(torch.randint(0, 300, (1, 100)))  # extends rotary, caches masks
        model(idx, idx).backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    warmed, fresh = grads
    assert warmed.keys() == fresh.keys() and all(fresh[n].abs().sum() > 0 for n in fresh)
    for name in fresh:
        torch.testing.assert_close(warmed[name], fresh[name], rtol=0, atol=0, msg=name)


def test_bf16_compute_keeps_fp32_master_weights(monkeypatch):
    monkeypatch.setenv("NANOCHAT_DTYPE", "bfloat16")
    model = tiny()
    idx = torch.randint(0, 300, (1, 8))
    loss = model(idx, idx)
    loss.backward()
    assert model(idx).dtype == torch.float32
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())


def test_tiny_model_overfits_one_batch():
    model = tiny()
    opt = model.setup_optimizer(unembedding_lr=0.02, embedding_lr=0.3, matrix_lr=0.04, weight_decay=0.0)
    torch.manual_seed(0)
    x = torch.randint(0, 300, (4, 32))
    y = torch.roll(x, -1, dims=1)
    losses = []
    for _ in range(30):
        loss = model(x, y)
        loss.backward()
        opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses

"""The depth dial (nanochat's scripts/base_train.py): from --depth alone, the model shape, the batch size, the horizon and the LRs.

Counting uses a model built on the meta device, so sizing a 1.7B-parameter model costs no memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nanochat_core.model.gpt import GPT, GPTConfig

B_REF = 2 ** 19  # tokens per step at the reference model (d12)
REF_DEPTH = 12
BATCH_EXPONENT = 0.383  # optimal batch grows as (tokens / D_REF) ** 0.383


def model_dim_for(depth: int, aspect_ratio: int = 64, head_dim: int = 128) -> tuple[int, int]:
    """model_dim = depth*aspect_ratio rounded up to a multiple of head_dim; n_head = model_dim / head_dim."""
    if depth < 1 or aspect_ratio < 1 or head_dim < 1:
        raise ValueError(f"depth, aspect_ratio and head_dim must be positive, got {depth}, {aspect_ratio}, {head_dim}")
    model_dim = math.ceil(depth * aspect_ratio / head_dim) * head_dim
    return model_dim, model_dim // head_dim


def build_model_config(depth: int, vocab_size: int, max_seq_len: int = 2048, aspect_ratio: int = 64,
                       head_dim: int = 128, window_pattern: str = "SSSL") -> GPTConfig:
    model_dim, n_head = model_dim_for(depth, aspect_ratio, head_dim)
    return GPTConfig(sequence_len=max_seq_len, vocab_size=vocab_size, n_layer=depth, n_head=n_head,
                     n_kv_head=n_head, n_embd=model_dim, window_pattern=window_pattern)


def meta_model(config: GPTConfig) -> GPT:
    with torch.device("meta"):
        return GPT(config)


def scaling_params(param_counts: dict[str, int]) -> int:
    """N for scaling laws: transformer matrices + lm_head (embeddings excluded)."""
    return param_counts["transformer_matrices"] + param_counts["lm_head"]


@dataclass
class TrainingPlan:
    model_config: GPTConfig
    param_counts: dict
    scaling_params: int
    flops_per_token: float
    total_batch_size: int
    num_iterations: int
    target_tokens: int  # ratio * N: what the auto batch size and the weight decay are derived from
    horizon_source: str  # "num_iterations" | "target_flops" | "target_param_data_ratio"
    d_ref: float
    batch_lr_scale: float  # sqrt(B / B_REF), applied to every LR below
    embedding_lr: float
    unembedding_lr: float
    matrix_lr: float
    scalar_lr: float
    weight_decay: float  # 0.28 * sqrt(B/B_REF) * D_REF/target_tokens: what setup_optimizer gets

    @property
    def total_tokens(self) -> int:
        return self.total_batch_size * self.num_iterations

    @property
    def total_flops(self) -> float:
        return self.flops_per_token * self.total_tokens

    @property
    def param_data_ratio(self) -> float:
        return self.total_tokens / self.scaling_params


def plan_training(depth: int, vocab_size: int, max_seq_len: int = 2048, aspect_ratio: int = 64, head_dim: int = 128,
                  window_pattern: str = "SSSL", num_iterations: int = -1, target_flops: float = -1.0,
                  target_param_data_ratio: float = 10.5, total_batch_size: int = -1, weight_decay: float = 0.28,
                  embedding_lr: float = 0.3, unembedding_lr: float = 0.008, matrix_lr: float = 0.02,
                  scalar_lr: float = 0.5) -> TrainingPlan:
    config = build_model_config(depth, vocab_size, max_seq_len, aspect_ratio, head_dim, window_pattern)
    model = meta_model(config)
    counts = model.num_scaling_params()
    N = scaling_params(counts)
    flops_per_token = model.estimate_flops()

    # The reference point: d12 at the same vocab/context/shape settings, trained at the same ratio.
    ref = meta_model(build_model_config(REF_DEPTH, vocab_size, max_seq_len, aspect_ratio, head_dim, window_pattern))
    if target_param_data_ratio <= 0 and (total_batch_size <= 0 or (num_iterations <= 0 and target_flops <= 0)):
        raise ValueError("--target-param-data-ratio must be > 0 unless --total-batch-size and a horizon "
                         "(--num-iterations or --target-flops) are given")
    ratio = target_param_data_ratio if target_param_data_ratio > 0 else 10.5  # only feeds the weight-decay scaling then
    d_ref = ratio * scaling_params(ref.num_scaling_params())
    target_tokens = int(ratio * N)

    if total_batch_size <= 0:
        predicted = B_REF * (target_tokens / d_ref) ** BATCH_EXPONENT
        total_batch_size = 2 ** round(math.log2(predicted))

    if num_iterations > 0:
        iters, source = num_iterations, "num_iterations"
    elif target_flops > 0:
        iters, source = round(target_flops / (flops_per_token * total_batch_size)), "target_flops"
    else:
        iters, source = target_tokens // total_batch_size, "target_param_data_ratio"
    if iters < 1:
        raise ValueError(f"the horizon ({source}) gives {iters} iterations at batch {total_batch_size}; "
                         "raise it or lower --total-batch-size")

    lr_scale = (total_batch_size / B_REF) ** 0.5
    return TrainingPlan(
        model_config=config, param_counts=counts, scaling_params=N, flops_per_token=flops_per_token,
        total_batch_size=total_batch_size, num_iterations=iters, target_tokens=target_tokens, horizon_source=source,
        d_ref=d_ref, batch_lr_scale=lr_scale, embedding_lr=embedding_lr * lr_scale,
        unembedding_lr=unembedding_lr * lr_scale, matrix_lr=matrix_lr * lr_scale, scalar_lr=scalar_lr * lr_scale,
        weight_decay=weight_decay * lr_scale * (d_ref / target_tokens),
    )

"""From depth to effective params N and back, for the scaling analysis.

The recommendation names a depth, so we need N(depth) for the model family the sweep used.
The family (vocab, aspect ratio, head dim) is read off the CSV rows when they carry model_dim and
params_wte; otherwise nanochat's defaults are assumed. Counting builds meta-device models
(no memory, ~0.1 s each), so lookups are cached and the depth search bisects.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from nanochat_core.model.sizing import build_model_config, meta_model, model_dim_for, scaling_params

DEFAULT_VOCAB = 32768
DEFAULT_SEQ_LEN = 2048
DEFAULT_ASPECT = 64
DEFAULT_HEAD_DIM = 128
MAX_DEPTH = 256


@dataclass(frozen=True)
class ModelFamily:
    vocab_size: int = DEFAULT_VOCAB
    seq_len: int = DEFAULT_SEQ_LEN
    aspect_ratio: int = DEFAULT_ASPECT
    head_dim: int = DEFAULT_HEAD_DIM
    inferred: bool = False  # True when read off the CSV rather than assumed

    def describe(self) -> str:
        how = "inferred from the CSV" if self.inferred else "nanochat defaults"
        return (f"vocab {self.vocab_size}, aspect ratio {self.aspect_ratio}, head dim {self.head_dim}, "
                f"seq {self.seq_len} ({how})")


@functools.lru_cache(maxsize=1024)
def _sized(depth: int, family: ModelFamily) -> tuple[dict, float]:
    config = build_model_config(depth, family.vocab_size, family.seq_len, family.aspect_ratio, family.head_dim)
    model = meta_model(config)
    return model.num_scaling_params(), model.estimate_flops()


def _counts(depth: int, family: ModelFamily) -> dict:
    return _sized(depth, family)[0]


def flops_per_token_at(depth: int, family: ModelFamily = ModelFamily()) -> float:
    """Training FLOPs per token (fwd+bwd) of the family's model at this depth."""
    return _sized(depth, family)[1]


def effective_params_at(depth: int, family: ModelFamily = ModelFamily()) -> int:
    return scaling_params(_counts(depth, family))


def infer_family(rows: list[dict]) -> ModelFamily:
    """The (aspect, head_dim, vocab) that reproduces every row's (depth, model_dim, params_wte), else defaults."""
    shapes = {(r["depth"], r["model_dim"]) for r in rows if r.get("depth") and r.get("model_dim")}
    if not shapes:
        return ModelFamily()
    vocabs = {r["params_wte"] // r["model_dim"] for r in rows
              if r.get("params_wte") and r.get("model_dim") and r["params_wte"] % r["model_dim"] == 0}
    vocab = vocabs.pop() if len(vocabs) == 1 else DEFAULT_VOCAB

    def fits(aspect: int, head_dim: int) -> bool:
        return all(model_dim_for(d, aspect, head_dim)[0] == dim for d, dim in shapes)

    # Prefer nanochat's defaults, then the aspect ratios nearest the rows' own dim/depth.
    median_aspect = sorted(dim / d for d, dim in shapes)[len(shapes) // 2]
    candidates = [(DEFAULT_ASPECT, DEFAULT_HEAD_DIM)] + sorted(
        ((a, h) for a in range(8, 513) for h in (128, 64)), key=lambda ah: (abs(ah[0] - median_aspect), -ah[1]))
    for aspect, head_dim in candidates:
        if fits(aspect, head_dim):
            return ModelFamily(vocab_size=vocab, aspect_ratio=aspect, head_dim=head_dim,
                               inferred=(aspect, head_dim, vocab) != (DEFAULT_ASPECT, DEFAULT_HEAD_DIM, DEFAULT_VOCAB))
    return ModelFamily(vocab_size=vocab, inferred=vocab != DEFAULT_VOCAB)


def depth_for_params(target_n: float, family: ModelFamily = ModelFamily()) -> int:
    """The depth whose effective params are closest to target_n in log space (N grows with depth)."""
    if target_n <= effective_params_at(1, family):
        return 1
    lo, hi = 1, 2
    while hi < MAX_DEPTH and effective_params_at(hi, family) < target_n:
        lo, hi = hi, min(2 * hi, MAX_DEPTH)
    while hi - lo > 1:  # invariant: N(lo) < target <= N(hi) (or hi = MAX_DEPTH)
        mid = (lo + hi) // 2
        if effective_params_at(mid, family) < target_n:
            lo = mid
        else:
            hi = mid
    log_t = math.log(target_n)
    return min((lo, hi), key=lambda d: abs(math.log(effective_params_at(d, family)) - log_t))

"""The model family a sweep trained, and N / FLOPs per token at any depth of it.

A recommendation names a depth, so the analysis needs N(depth) for the family the cells used. The
family is what each cell recorded (the CSV's shape columns, from its checkpoint meta) or what the
user states for a CSV without them (nanochat's own files); it is never guessed. Counting builds
meta-device models (no memory, ~0.1 s each), so lookups are cached and the depth search bisects.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

from nanochat_core.model.sizing import build_model_config, meta_model, scaling_params

MAX_DEPTH = 256


class ModelFamilyError(ValueError):
    """Rows that do not share one model family (or state an impossible one); names the rows."""


@dataclass(frozen=True)
class ModelFamily:
    vocab_size: int
    max_seq_len: int
    aspect_ratio: int
    head_dim: int
    window_pattern: str

    def describe(self) -> str:
        return (f"vocab {self.vocab_size}, aspect ratio {self.aspect_ratio}, head dim {self.head_dim}, "
                f"seq {self.max_seq_len}, window {self.window_pattern}")

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


SHAPE_FIELDS = [f.name for f in fields(ModelFamily)]  # the CSV's shape columns, same names


def parse_family(text: str) -> ModelFamily:
    """`vocab_size=512,max_seq_len=64,aspect_ratio=32,head_dim=32,window_pattern=L` (all five)."""
    pairs = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
    missing, unknown = set(SHAPE_FIELDS) - set(pairs), set(pairs) - set(SHAPE_FIELDS)
    if missing or unknown or len(pairs) != len(text.split(",")):
        raise ModelFamilyError(f"model shape {text!r}: give exactly {', '.join(f'{k}=...' for k in SHAPE_FIELDS)}")
    try:
        return ModelFamily(**{k: (pairs[k] if k == "window_pattern" else int(pairs[k])) for k in SHAPE_FIELDS})
    except ValueError as e:
        raise ModelFamilyError(f"model shape {text!r}: {e}") from None


def _where(row: dict) -> str:
    return f"line {row['_line']}" if row.get("_line") is not None else f"budget {row.get('flops_budget')} depth {row.get('depth')}"


def sweep_family(rows: list[dict], stated: ModelFamily | None = None) -> tuple[ModelFamily | None, str | None]:
    """(the family every row recorded, None) or (None, why it is unknown).

    A row with no shape columns takes `stated` (the user's word for a CSV without them); rows that
    recorded different families are an error naming them: one isoFLOP law is for one family.
    """
    families: dict[ModelFamily, list[dict]] = {}
    unknown = []
    for row in rows:
        values = [row.get(k) for k in SHAPE_FIELDS]
        if all(v is None for v in values):
            if stated is None:
                unknown.append(row)
            else:
                families.setdefault(stated, []).append(row)
            continue
        if any(v is None for v in values):
            blank = [k for k, v in zip(SHAPE_FIELDS, values) if v is None]
            raise ModelFamilyError(f"{_where(row)}: shape column(s) {', '.join(blank)} empty while others are filled")
        family = ModelFamily(**dict(zip(SHAPE_FIELDS, values)))
        if stated is not None and family != stated:
            raise ModelFamilyError(f"{_where(row)} recorded {family.describe()}, but the stated shape is {stated.describe()}")
        families.setdefault(family, []).append(row)
    if len(families) > 1:
        seen = "; ".join(f"{f.describe()} ({', '.join(_where(r) for r in rs[:3])})" for f, rs in families.items())
        raise ModelFamilyError(f"the rows recorded {len(families)} model families, one law needs one: {seen}")
    if unknown:
        return None, (f"{', '.join(_where(r) for r in unknown[:5])}{' ...' if len(unknown) > 5 else ''}: "
                      "no recorded model shape (vocab_size, max_seq_len, aspect_ratio, head_dim, window_pattern); "
                      "give it with --shape to name depths")
    return (next(iter(families)) if families else None), (None if families else "no rows")


@functools.lru_cache(maxsize=1024)
def _sized(depth: int, family: ModelFamily) -> tuple[dict, float]:
    config = build_model_config(depth, family.vocab_size, family.max_seq_len, family.aspect_ratio, family.head_dim,
                                family.window_pattern)
    model = meta_model(config)
    return model.num_scaling_params(), model.estimate_flops()


def flops_per_token_at(depth: int, family: ModelFamily) -> float:
    """Training FLOPs per token (fwd+bwd) of the family's model at this depth."""
    return _sized(depth, family)[1]


def effective_params_at(depth: int, family: ModelFamily) -> int:
    return scaling_params(_sized(depth, family)[0])


def depth_for_params(target_n: float, family: ModelFamily) -> int:
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


def depth_for_ratio(budget: float, ratio: float, family: ModelFamily) -> int:
    """The depth whose tokens:params at this budget (tokens = budget / FLOPs per token) is nearest `ratio`.
    The ratio falls as depth grows, so the first depth at or below it, or the one before, is nearest."""
    def log_gap(depth: int) -> float:
        tokens = budget / flops_per_token_at(depth, family)
        return math.log(tokens / effective_params_at(depth, family) / ratio)

    depth = 1
    while depth < MAX_DEPTH and log_gap(depth) > 0:
        depth += 1
    return min((max(1, depth - 1), depth), key=lambda d: abs(log_gap(d)))

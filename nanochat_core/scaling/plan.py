"""A plan for a target budget: what to train at C, what it should reach, and how long it takes.

From Approach 3 fitted on every budget: the compute-optimal N and D at C (closed form under C = 6ND,
intervals from the bootstrap refits), the predicted best val_bpb there, and the recorded model
family's depths nearest that N, each with its own N, its tokens at C (C / its FLOPs per token) and
its predicted val_bpb with a 95% prediction interval. Wall time at the FLOP rate the grid's own cells
measured (their budget / training seconds: tokens/s scaled by FLOPs per token), taken from the cells
of the same depth where there are some, else the median over all cells. A target more than
PROJECTION_FACTOR beyond the largest fitted budget is a projection, labelled and warned about.
fit.json's `plan` keys are fixed (other tools read them).
"""
from __future__ import annotations

import math

import numpy as np

from nanochat_core.scaling.approach3 import Approach3Fit
from nanochat_core.scaling.prediction import predict_cells, predict_optimum
from nanochat_core.scaling.shape import ModelFamily, depth_for_params, effective_params_at, flops_per_token_at

PROJECTION_FACTOR = 100


def measured_flop_rates(rows: list[dict]) -> dict[int | None, float]:
    """Depth -> median FLOPs/s its cells trained at (key None: the median over all cells)."""
    rates: dict[int | None, list[float]] = {}
    for r in rows:
        seconds = r.get("train_time_sec")
        if isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0:
            rate = r["flops_budget"] / seconds
            rates.setdefault(r.get("depth"), []).append(rate)
            rates.setdefault(None, []).append(rate)
    return {k: float(np.median(v)) for k, v in rates.items()}


def _hours(flops: float, depth: int | None, rates: dict) -> float | None:
    rate = rates.get(depth) or rates.get(None)
    return flops / rate / 3600 if rate else None


def _estimate(predicted) -> dict:
    return {"value": predicted.value, "ci": list(predicted.interval) if predicted.interval else None}


def plan_for(flops: float, fit3: Approach3Fit | None, family: ModelFamily | None, rows: list[dict],
             rng: np.random.Generator) -> dict:
    largest = max((r["flops_budget"] for r in rows), default=0.0)
    kind = "projection" if largest and flops > PROJECTION_FACTOR * largest else "prediction"
    entry = {"flops": flops, "n_opt": None, "d_opt": None, "predicted_bpb": None, "depths": None, "hours": None,
             "kind": kind, "reason": None, "warning": None}
    if kind == "projection":
        entry["warning"] = (f"{flops:.3g} FLOPs is {flops / largest:.3g}x the largest fitted budget {largest:.3g} "
                            f"(more than {PROJECTION_FACTOR}x): a projection, not a prediction the grid can vouch for")
    if fit3 is None or fit3.theta is None:
        entry["reason"] = f"no parametric law (Approach 3): {fit3.reason if fit3 else 'not fitted'}"
        return entry
    optimum = predict_optimum(fit3, flops, rng)
    entry.update(n_opt=_estimate(optimum["n_opt"]), d_opt=_estimate(optimum["d_opt"]),
                 predicted_bpb=_estimate(optimum["best_bpb"]))
    rates = measured_flop_rates(rows)
    if family is None:
        entry["reason"] = "no recorded model shape: no depth can be named"
        entry["hours"] = _hours(flops, None, rates)
    else:
        centre = depth_for_params(optimum["n_opt"].value, family)
        depths = [d for d in (centre - 1, centre, centre + 1) if d >= 1]
        params = np.array([effective_params_at(d, family) for d in depths], dtype=float)
        tokens = np.array([flops / flops_per_token_at(d, family) for d in depths])
        predicted = predict_cells(fit3, params, tokens, rng)
        entry["depths"] = [{"depth": d, "params": float(n), "tokens": float(t), "predicted_bpb": p.value,
                            "interval": list(p.interval) if p.interval else None, "hours": _hours(flops, d, rates)}
                           for d, n, t, p in zip(depths, params, tokens, predicted)]
        entry["hours"] = _hours(flops, centre, rates)
    if entry["hours"] is None:
        entry["reason"] = ((entry["reason"] + "; ") if entry["reason"] else "") + "no cell recorded its training time"
    if fit3.draws is None or entry["n_opt"]["ci"] is None:
        note = f"no intervals ({fit3.reason or 'too few usable refits'})"
        entry["reason"] = ((entry["reason"] + "; ") if entry["reason"] else "") + note
    return entry


def plan_line(entry: dict) -> str:
    """One line per target for the terminal and the card."""
    head = f"plan for {entry['flops']:.3g} FLOPs ({entry['kind']})"
    if entry["n_opt"] is None:
        return f"{head}: not known ({entry['reason']})"

    def est(e, fmt):
        return f"{e['value']:{fmt}}" + (f" [{e['ci'][0]:{fmt}}, {e['ci'][1]:{fmt}}]" if e["ci"] else "")

    line = (f"{head}: N_opt {est(entry['n_opt'], '.3g')}, D_opt {est(entry['d_opt'], '.3g')}, best val_bpb "
            f"{est(entry['predicted_bpb'], '.4g')}")
    if entry["depths"]:
        line += "; " + ", ".join(
            f"d{d['depth']} (N {d['params']:.3g}): {d['predicted_bpb']:.4g}"
            + (f" [{d['interval'][0]:.4g}, {d['interval'][1]:.4g}]" if d["interval"] else "") for d in entry["depths"])
    if entry["hours"] is not None:
        line += f"; {entry['hours']:.3g} h at the grid's measured FLOP rate"
    if entry["warning"]:
        line += f"\n  WARNING: {entry['warning']}"
    return line

"""The backtest: does a law fitted on the smaller budgets foretell a budget it has not seen?

A "prediction" in Marin's sense (checked against a run we have), not a "projection". One budget
(the largest by default) is held out; Approach 3's L(N, D) is fitted on the others and predicts each
held-out cell's val_bpb with a 95% prediction interval (prediction.py). Where two or more of the other
budgets are bracketed, Approach 2 predicts the held-out budget's optimal N and best val_bpb from
power laws of the per-budget optima (straight lines in log-log), with parametric-bootstrap intervals.
fit.json's `backtest` keys are fixed (other tools read them); what cannot be known is null with a reason.
"""
from __future__ import annotations

import math

import numpy as np

from nanochat_core.scaling.approach3 import fit_approach3
from nanochat_core.scaling.budget import MIN_POINTS, BudgetFit, resampled_minima
from nanochat_core.scaling.prediction import MIN_DRAWS, _percentiles, predict_cells

APPROACH2_MIN_BUDGETS = 2  # two bracketed optima draw a line; the held-out budget checks it


class BacktestBudgetError(ValueError):
    """--backtest-budget names a budget the rows do not have."""


def empty_backtest(reason: str, held_out: float | None = None, fitted_on: list[float] | None = None) -> dict:
    return {"held_out_budget": held_out, "fitted_on": fitted_on or [], "cells": [], "mean_abs_pct_error": None,
            "coverage": None, "approach2": None, "reason": reason}


def pick_held_out(budgets: list[float], wanted: float | None) -> float:
    """The largest budget, or the one named (matched to 3 significant digits, as budgets are written)."""
    if wanted is None:
        return max(budgets)
    for budget in budgets:
        if math.isclose(budget, wanted, rel_tol=5e-3):
            return budget
    raise BacktestBudgetError(f"--backtest-budget {wanted:g}: not a budget of these rows "
                              f"({', '.join(f'{b:g}' for b in sorted(budgets))})")


def _line(log_c: np.ndarray, log_y: np.ndarray, at: float) -> np.ndarray:
    """Least-squares line(s) of log_y (..., B) in log_c (B,), evaluated at `at`."""
    lc = log_c - log_c.mean()
    slope = ((log_y - log_y.mean(axis=-1, keepdims=True)) @ lc) / (lc ** 2).sum()
    return log_y.mean(axis=-1) + slope * (at - log_c.mean())


def approach2_prediction(fitted: list[BudgetFit], held: BudgetFit | None, held_out: float, bootstrap: int,
                         rng: np.random.Generator) -> dict | None:
    """Held-out N_opt and best val_bpb from the other budgets' bracketed optima; None when fewer than
    APPROACH2_MIN_BUDGETS are bracketed."""
    used = [b for b in fitted if b.bracketed]
    if len(used) < APPROACH2_MIN_BUDGETS:
        return None
    log_c, at = np.log10([b.flops_budget for b in used]), math.log10(held_out)
    n_opt = 10 ** float(_line(log_c, np.log10([b.n_opt for b in used]), at))
    best = 10 ** float(_line(log_c, np.log10([b.min_val_bpb for b in used]), at))
    result = {"fitted_on": [b.flops_budget for b in used],
              "n_opt": {"value": n_opt, "ci": None, "measured": None},
              "best_bpb": {"value": best, "ci": None, "measured": None, "measured_from": None}, "reason": None}
    if held is not None and held.bracketed:
        result["n_opt"]["measured"] = held.n_opt
        result["best_bpb"].update(measured=held.min_val_bpb, measured_from="the held-out budget's parabola minimum")
    elif held is not None:
        result["best_bpb"].update(measured=float(held.val_bpb.min()), measured_from="the held-out budget's lowest cell "
                                  f"(its optimum is not bracketed: {held.reason})")
    dof = sum(b.points - MIN_POINTS for b in used)
    if bootstrap <= 0 or dof == 0:
        result["reason"] = ("no bootstrap asked for" if bootstrap <= 0 else
                            f"every fitted budget has exactly {MIN_POINTS} points: no residual, no intervals")
        return result
    sigma = math.sqrt(sum(float(((b.val_bpb - b.fitted()) ** 2).sum()) for b in used) / dof)
    draws = [resampled_minima(b, sigma, bootstrap, rng) for b in used]
    log_n = np.stack([d[0] for d in draws], axis=1)
    minima = np.stack([d[2] for d in draws], axis=1)
    ok = np.isfinite(log_n).all(axis=1) & np.isfinite(minima).all(axis=1) & (minima > 0).all(axis=1)
    if ok.sum() < MIN_DRAWS:
        result["reason"] = f"only {int(ok.sum())} of {bootstrap} resamples usable (< {MIN_DRAWS}): no intervals"
        return result
    result["n_opt"]["ci"] = list(_percentiles(10 ** _line(log_c, log_n[ok], at)))
    result["best_bpb"]["ci"] = list(_percentiles(10 ** _line(log_c, np.log10(minima[ok]), at)))
    return result


def run_backtest(rows: list[dict], budget_fits: list[BudgetFit], wanted: float | None, bootstrap: int,
                 rng: np.random.Generator, ci_of, min_usable: int) -> dict:
    """rows: the fit's usable rows (with "_n", "_d"); budget_fits: one per budget. ci_of, min_usable:
    the fit's interval rule for Approach 3's refits."""
    budgets = sorted({r["flops_budget"] for r in rows})
    if not budgets:
        return empty_backtest("no usable row")
    held_out = pick_held_out(budgets, wanted)
    fitted_on = [b for b in budgets if b != held_out]
    if not fitted_on:
        return empty_backtest("a single budget: nothing is left to fit on once it is held out", held_out)
    train = [r for r in rows if r["flops_budget"] != held_out]
    test = sorted((r for r in rows if r["flops_budget"] == held_out), key=lambda r: r["_n"])
    fit3 = fit_approach3(*(np.array([r[k] for r in train], dtype=float) for k in ("_n", "_d", "val_bpb", "flops_budget")),
                         bootstrap=bootstrap, rng=rng, ci_of=ci_of, min_usable=min_usable)
    by_budget = {b.flops_budget: b for b in budget_fits}
    approach2 = approach2_prediction([by_budget[b] for b in fitted_on if b in by_budget], by_budget.get(held_out),
                                     held_out, bootstrap, rng)
    if fit3.theta is None:
        out = empty_backtest(f"Approach 3 on the other {len(fitted_on)} budget(s): {fit3.reason}", held_out, fitted_on)
        out["approach2"] = approach2
        return out
    predicted = predict_cells(fit3, np.array([r["_n"] for r in test]), np.array([r["_d"] for r in test]), rng)
    cells = [{"depth": r.get("depth"), "params": r["_n"], "tokens": r["_d"], "predicted_bpb": p.value,
              "interval": list(p.interval) if p.interval else None, "measured_bpb": r["val_bpb"]}
             for r, p in zip(test, predicted)]
    errors = [abs(c["predicted_bpb"] - c["measured_bpb"]) / c["measured_bpb"] for c in cells]
    with_interval = [c for c in cells if c["interval"]]
    coverage = (sum(c["interval"][0] <= c["measured_bpb"] <= c["interval"][1] for c in with_interval) / len(cells)
                if cells and len(with_interval) == len(cells) else None)
    reason = None if coverage is not None else (
        f"no prediction intervals: {fit3.reason or f'fewer than {MIN_DRAWS} usable refits'}")
    return {"held_out_budget": held_out, "fitted_on": fitted_on, "cells": cells,
            "mean_abs_pct_error": 100 * float(np.mean(errors)), "coverage": coverage, "approach2": approach2,
            "reason": reason}


def backtest_line(backtest: dict | None) -> str:
    """One sentence for the verdict, the asset's metadata and the card."""
    if not backtest:
        return "backtest: off"
    held = backtest.get("held_out_budget")
    if backtest.get("mean_abs_pct_error") is None:
        where = f" of the {held:.3g} budget" if held else ""
        return f"backtest{where}: not known ({backtest.get('reason')})"
    cells = backtest["cells"]
    line = (f"backtest: fitted on {len(backtest['fitted_on'])} budgets, predicted the {held:.3g} budget's "
            f"{len(cells)} cells within {backtest['mean_abs_pct_error']:.1f}%")
    if backtest.get("coverage") is not None:
        inside = sum(c["interval"][0] <= c["measured_bpb"] <= c["interval"][1] for c in cells)
        line += f" ({inside}/{len(cells)} inside their 95% intervals)"
    else:
        line += f" (no intervals: {backtest.get('reason')})"
    a2 = backtest.get("approach2")
    if a2 and a2["best_bpb"]["measured"] is not None:
        best = a2["best_bpb"]
        line += f"; Approach 2's best val_bpb {best['value']:.4g} vs {best['measured']:.4g} measured"
    return line

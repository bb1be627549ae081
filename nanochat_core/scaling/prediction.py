"""Predictions of the parametric law L(N, D) with 95% prediction intervals.

A prediction interval must hold a new measurement, not just the curve: each usable bootstrap refit
(the parameters' uncertainty) predicts log L at the cell, and a residual of the point fit drawn at
random (the scatter a single run shows around the law) is added. The residuals are inflated by
sqrt(rows / (rows - 5)), as a five-parameter fit leaves them smaller than the noise that made them.
Used by the backtest (cells of a held-out budget) and the plan (a target budget's depths).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanochat_core.scaling.approach3 import Approach3Fit, _log_pred

PARAMETERS = 5
LEVEL = 0.95
MIN_DRAWS = 200  # as the fit's intervals: fewer usable refits give no interval


@dataclass
class Predicted:
    value: float
    interval: tuple[float, float] | None  # None: too few usable refits (reason on the caller's side)


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - LEVEL) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def residual_draws(fit3: Approach3Fit, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    rows = len(fit3.residuals)
    inflate = np.sqrt(rows / max(1, rows - PARAMETERS))
    return rng.choice(fit3.residuals * inflate, size=shape, replace=True)


def has_intervals(fit3: Approach3Fit) -> bool:
    return fit3.draws is not None and len(fit3.draws) >= MIN_DRAWS and fit3.residuals is not None


def predict_cells(fit3: Approach3Fit, n: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> list[Predicted]:
    """val_bpb at (N, D) for each cell, with its prediction interval when the fit has enough refits."""
    log_n, log_d = np.log(np.asarray(n, dtype=float)), np.log(np.asarray(d, dtype=float))
    point = np.exp(_log_pred(fit3.theta, log_n, log_d)[0])
    if not has_intervals(fit3):
        return [Predicted(float(p), None) for p in point]
    boot = _log_pred(fit3.draws, log_n, log_d)[0]  # (S, cells)
    boot = boot + residual_draws(fit3, boot.shape, rng)
    return [Predicted(float(p), _percentiles(np.exp(boot[:, i]))) for i, p in enumerate(point)]


def optimum(theta: np.ndarray, flops: float) -> tuple[np.ndarray, np.ndarray]:
    """N_opt and D_opt of L under C = 6 N D (Chinchilla's closed form); theta (..., 5)."""
    e, a, b, alpha, beta = (theta[..., i] for i in range(5))
    g_log = (np.log(alpha) + a - np.log(beta) - b) / (alpha + beta)
    ln_c6 = np.log(flops / 6.0)
    ln_n = g_log + beta / (alpha + beta) * ln_c6
    return np.exp(ln_n), np.exp(ln_c6 - ln_n)


def predict_optimum(fit3: Approach3Fit, flops: float, rng: np.random.Generator) -> dict[str, Predicted]:
    """{"n_opt", "d_opt", "best_bpb"} at a budget: the point fit's values; intervals from the refits
    (each refit's own optimum), the best loss's with the residual scatter added as above."""
    n, d = optimum(fit3.theta, flops)
    best = float(np.exp(_log_pred(fit3.theta, np.log(n), np.log(d))[0])[0])
    if not has_intervals(fit3):
        return {"n_opt": Predicted(float(n), None), "d_opt": Predicted(float(d), None), "best_bpb": Predicted(best, None)}
    ns, ds = optimum(fit3.draws, flops)
    log_best = _log_pred(fit3.draws, np.log(ns)[:, None], np.log(ds)[:, None])[0][:, 0]  # each refit at its own optimum
    log_best = log_best + residual_draws(fit3, log_best.shape, rng)
    return {"n_opt": Predicted(float(n), _percentiles(ns)), "d_opt": Predicted(float(d), _percentiles(ds)),
            "best_bpb": Predicted(best, _percentiles(np.exp(log_best)))}

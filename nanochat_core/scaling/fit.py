"""IsoFLOP scaling-law fit (nanochat's notebook analysis, plus the uncertainty it lacked).

Per FLOPs budget C: fit val_bpb as a quadratic in log10(N) (N = params_transformer +
params_lm_head); its minimum is N_opt, and D_opt is read off the budget's own tokens-vs-N curve
at N_opt. Across budgets: N_opt ~ C^a and D_opt ~ C^b (straight lines in log-log), and the
optimal tokens:params ratio at the geometric mean of the budgets. Parabola minima are biased
and noisy when a grid is coarse or off-centre (nanochat's scaling-laws notebook says as much), so a, b and the ratio get bootstrap
intervals from resampling each budget's points. numpy only.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from nanochat_core.scaling.results_csv import effective_params
from nanochat_core.scaling.shape import (ModelFamily, depth_for_params, effective_params_at, flops_per_token_at,
                                         infer_family)

MIN_POINTS = 3  # a parabola needs three distinct N
NEXT_BUDGET_STEP = 10 ** 0.5  # default next budget: half a decade above the largest
CI_LEVEL = 0.95


class ScalingFitWarning(UserWarning):
    pass


@dataclass
class BudgetFit:
    flops_budget: float
    n_opt: float
    d_opt: float
    min_val_bpb: float  # the parabola's value at its minimum
    points: int
    coeffs: tuple[float, float, float]  # val_bpb = c2*x^2 + c1*x + c0, x = log10(N)
    log_n: np.ndarray
    log_d: np.ndarray
    val_bpb: np.ndarray
    extrapolated: bool  # N_opt outside the sampled N range: the parabola was extended beyond the data

    @property
    def ratio(self) -> float:
        return self.d_opt / self.n_opt

    def to_json(self) -> dict:
        return {"flops_budget": self.flops_budget, "n_opt": self.n_opt, "d_opt": self.d_opt, "ratio": self.ratio,
                "min_val_bpb": self.min_val_bpb, "points": self.points}


@dataclass
class Estimate:
    value: float | None
    ci: tuple[float | None, float | None] = (None, None)

    def to_json(self) -> dict:
        return {"value": self.value, "ci": list(self.ci)}


@dataclass
class ScalingFit:
    n_opt_exponent: Estimate
    d_opt_exponent: Estimate
    optimal_ratio: Estimate
    budgets: list[BudgetFit]
    recommendation: dict | None
    dropped: list[dict]
    n_law: tuple[float, float] | None = None  # (slope, intercept) of log10 N_opt vs log10 C
    d_law: tuple[float, float] | None = None
    excluded: list[dict] = field(default_factory=list)  # budgets left out of the laws: {flops_budget, reason, rows}
    usable_rows: list[dict] = field(default_factory=list)  # every row with a valid point (for the plot)
    family: ModelFamily = ModelFamily()
    bootstrap_samples: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """fit.json: exactly these top-level keys."""
        return {
            "n_opt_exponent": self.n_opt_exponent.to_json(),
            "d_opt_exponent": self.d_opt_exponent.to_json(),
            "optimal_ratio": self.optimal_ratio.to_json(),
            "budgets": [b.to_json() for b in self.budgets],
            "recommendation": self.recommendation,
            "dropped": self.dropped,
        }


def _finite_or_none(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _row_ref(row: dict) -> dict:
    ref = {"flops_budget": _finite_or_none(row.get("flops_budget")), "depth": row.get("depth"),
           "val_bpb": _finite_or_none(row.get("val_bpb"))}
    if row.get("_line") is not None:
        ref["line"] = row["_line"]
    return ref


def _describe(row: dict) -> str:
    where = f"line {row['_line']}: " if row.get("_line") is not None else ""
    return f"{where}budget {row.get('flops_budget')!r} depth {row.get('depth')!r}"


class _Collector:
    """Collects notes for the caller and also raises them as Python warnings."""

    def __init__(self):
        self.messages: list[str] = []

    def warn(self, msg: str) -> None:
        self.messages.append(msg)
        warnings.warn(msg, ScalingFitWarning, stacklevel=3)


def prepare_rows(rows: list[dict], family: ModelFamily, notes: _Collector) -> tuple[list[dict], list[dict]]:
    """(usable rows with "_n" and "_d" filled, dropped row refs with reasons)."""
    usable, dropped = [], []
    for row in rows:
        bpb, budget = row.get("val_bpb"), row.get("flops_budget")
        reason = None
        if bpb is None or not math.isfinite(bpb) or bpb <= 0:
            reason = f"val_bpb is {'empty' if bpb is None else bpb} (must be a positive number)"
        elif budget is None or not math.isfinite(budget) or budget <= 0:
            reason = f"flops_budget is {'empty' if budget is None else budget}"
        n, d = effective_params(row), row.get("tokens_trained")
        depth = row.get("depth")
        if reason is None and n is None:
            # nanochat's own sweep left the params columns blank (its runs/scaling_laws.sh scraped logs with greps that missed them): recount from the depth.
            if depth:
                n = effective_params_at(depth, family)
                notes.warn(f"{_describe(row)}: params columns empty, N={n:,} counted from the depth ({family.describe()})")
            else:
                reason = "params_transformer/params_lm_head and depth are empty: N unknown"
        if reason is None and not d:
            if depth:
                d = int(budget / flops_per_token_at(depth, family))
                notes.warn(f"{_describe(row)}: tokens_trained empty, taken as budget / FLOPs-per-token = {d:,}")
            else:
                reason = "tokens_trained is empty"
        if reason is None and n <= 0:
            reason = f"effective params N={n} is not positive"
        if reason is not None:
            notes.warn(f"dropping {_describe(row)}: {reason}")
            dropped.append({**_row_ref(row), "reason": reason})
            continue
        usable.append({**row, "_n": float(n), "_d": float(d)})
    return usable, dropped


def _interp_extrap(x, xs: np.ndarray, ys: np.ndarray):
    """Piecewise-linear y(x) through sorted xs, extended linearly past either end."""
    x = np.asarray(x, dtype=float)
    y = np.interp(x, xs, ys)
    lo_slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
    hi_slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    y = np.where(x < xs[0], ys[0] + (x - xs[0]) * lo_slope, y)
    return np.where(x > xs[-1], ys[-1] + (x - xs[-1]) * hi_slope, y)


def _token_curve(log_n: np.ndarray, log_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct log N with the mean log tokens at each (repeats of a depth are averaged)."""
    xs = np.unique(log_n)
    return xs, np.array([log_d[log_n == x].mean() for x in xs])


def fit_budget(budget: float, rows: list[dict]) -> BudgetFit | str:
    """The budget's fit, or the reason it is left out of the power laws."""
    log_n = np.log10([r["_n"] for r in rows])
    log_d = np.log10([r["_d"] for r in rows])
    bpb = np.array([r["val_bpb"] for r in rows], dtype=float)
    distinct = len(np.unique(log_n))
    if distinct < MIN_POINTS:
        return f"only {distinct} distinct model size(s) (a parabola needs {MIN_POINTS})"
    c2, c1, c0 = np.polyfit(log_n, bpb, 2)
    if c2 <= 0:
        return f"the parabola opens downwards (curvature {c2:.3g}): no minimum in this budget"
    x_opt = -c1 / (2 * c2)
    xs, ys = _token_curve(log_n, log_d)
    log_d_opt = float(_interp_extrap(x_opt, xs, ys))
    return BudgetFit(flops_budget=budget, n_opt=float(10 ** x_opt), d_opt=float(10 ** log_d_opt),
                     min_val_bpb=float(c0 - c1 * c1 / (4 * c2)), points=len(rows), coeffs=(c2, c1, c0),
                     log_n=log_n, log_d=log_d, val_bpb=bpb, extrapolated=not (xs[0] <= x_opt <= xs[-1]))


def _line(log_c: np.ndarray, log_y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(log_c, log_y, 1)
    return float(slope), float(intercept)


def _bootstrap_optima(fit: BudgetFit, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """log10 N_opt and log10 D_opt of `samples` resamples of the budget's points (NaN where no minimum)."""
    n = len(fit.log_n)
    idx = rng.integers(0, n, size=(samples, n))
    center = fit.log_n.mean()  # centring keeps the normal equations well conditioned
    x, y = fit.log_n[idx] - center, fit.val_bpb[idx]
    design = np.stack([x ** 2, x, np.ones_like(x)], axis=-1)  # (S, n, 3)
    xtx = design.transpose(0, 2, 1) @ design
    xty = (design.transpose(0, 2, 1) @ y[..., None])[..., 0]
    sorted_x = np.sort(x, axis=1)
    distinct = 1 + (np.diff(sorted_x, axis=1) > 1e-12).sum(axis=1)
    ok = distinct >= MIN_POINTS
    coeffs = np.full((samples, 3), np.nan)
    coeffs[ok] = np.linalg.solve(xtx[ok], xty[ok][..., None])[..., 0]
    c2, c1 = coeffs[:, 0], coeffs[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        x_opt = np.where(c2 > 0, -c1 / (2 * c2), np.nan) + center
    xs, ys = _token_curve(fit.log_n, fit.log_d)
    return x_opt, _interp_extrap(x_opt, xs, ys)


def _ci(values: np.ndarray) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return (None, None)
    tail = 100 * (1 - CI_LEVEL) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return (float(lo), float(hi))


def analyze(rows: list[dict], next_budget: float | None = None, bootstrap: int = 1000, seed: int = 0,
            family: ModelFamily | None = None) -> ScalingFit:
    """Fit the scaling laws to results rows (as read_scaling_csv returns them)."""
    notes = _Collector()
    family = family or infer_family(rows)
    usable, dropped = prepare_rows(rows, family, notes)

    by_budget: dict[float, list[dict]] = {}
    for row in usable:
        by_budget.setdefault(row["flops_budget"], []).append(row)
    fits, excluded = [], []
    for budget in sorted(by_budget):
        result = fit_budget(budget, by_budget[budget])
        if isinstance(result, str):
            notes.warn(f"budget {budget:.3g} left out of the power laws: {result}")
            excluded.append({"flops_budget": budget, "reason": result, "rows": by_budget[budget]})
            dropped.extend({**_row_ref(r), "reason": f"budget {budget:.3g} left out: {result}"}
                           for r in by_budget[budget])
            continue
        if result.extrapolated:
            notes.warn(f"budget {budget:.3g}: the minimum (N={result.n_opt:.3g}) lies outside the sampled sizes; "
                       "it is an extrapolation - add sizes on that side")
        fits.append(result)

    fit = ScalingFit(Estimate(None), Estimate(None), Estimate(None), fits, None, dropped, excluded=excluded,
                     usable_rows=usable, family=family, warnings=notes.messages)
    if not fits:
        notes.warn("no budget could be fitted: nothing to extrapolate")
        return fit

    log_c = np.log10([f.flops_budget for f in fits])
    log_n = np.log10([f.n_opt for f in fits])
    log_d = np.log10([f.d_opt for f in fits])
    # The ratio at the geometric mean of the budgets: the least-squares lines pass through the
    # means, so it is the geometric mean of the per-budget ratios (and defined for one budget too).
    ratio = float(10 ** (log_d.mean() - log_n.mean()))

    boot_n = boot_d = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = [_bootstrap_optima(f, bootstrap, rng) for f in fits]
        boot_n = np.stack([d[0] for d in draws], axis=1)  # (S, budgets)
        boot_d = np.stack([d[1] for d in draws], axis=1)
        good = np.isfinite(boot_n).all(axis=1)  # a resample without a minimum in some budget is discarded
        boot_n, boot_d = boot_n[good], boot_d[good]
        fit.bootstrap_samples = int(good.sum())
        fit.optimal_ratio = Estimate(ratio, _ci(10 ** (boot_d.mean(axis=1) - boot_n.mean(axis=1))))
    else:
        fit.optimal_ratio = Estimate(ratio)

    if len(fits) >= 2:
        fit.n_law, fit.d_law = _line(log_c, log_n), _line(log_c, log_d)
        n_ci = d_ci = (None, None)
        if boot_n is not None:
            lc = log_c - log_c.mean()
            denom = (lc ** 2).sum()
            n_ci = _ci(((boot_n - boot_n.mean(axis=1, keepdims=True)) @ lc) / denom)
            d_ci = _ci(((boot_d - boot_d.mean(axis=1, keepdims=True)) @ lc) / denom)
        fit.n_opt_exponent = Estimate(fit.n_law[0], n_ci)
        fit.d_opt_exponent = Estimate(fit.d_law[0], d_ci)
    else:
        notes.warn("only one budget fitted: exponents need two or more; the recommendation uses the ratio alone")

    target = float(next_budget) if next_budget else float(10 ** log_c.max() * NEXT_BUDGET_STEP)
    fit.recommendation = recommend(fit, target)
    return fit


def recommend(fit: ScalingFit, budget: float) -> dict:
    """Compute-optimal params, tokens and the nearest depth for a FLOPs budget."""
    if fit.n_law is not None and fit.d_law is not None:
        lc = math.log10(budget)
        params = 10 ** (fit.n_law[0] * lc + fit.n_law[1])
        tokens = 10 ** (fit.d_law[0] * lc + fit.d_law[1])
    else:
        # C ~ 6 N D with D = r N  =>  N = sqrt(C / (6 r))
        params = math.sqrt(budget / (6 * fit.optimal_ratio.value))
        tokens = fit.optimal_ratio.value * params
    return {"flops_budget": budget, "depth": depth_for_params(params, fit.family), "params": float(params),
            "tokens": float(tokens)}

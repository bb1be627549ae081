"""The scaling-law fit of a sweep: what the data support, and nothing more.

Approach 2 (nanochat's notebook): per FLOPs budget, a parabola of val_bpb in log10 N (budget.py),
used only where it brackets its optimum; across at least MIN_BUDGETS bracketed budgets spanning at
least MIN_DECADES of compute, N_opt ~ C^a and D_opt ~ C^b are straight lines in log-log and the
optimal tokens:params ratio is taken at the budgets' geometric mean. Intervals come from a
parametric bootstrap of each budget's curve (noise = the parabolas' pooled residual spread), and
are reported only from at least MIN_USABLE usable resamples and when not of zero width.
Approach 3 (approach3.py) fits L = E + A/N^alpha + B/D^beta to every finite row, side by side.
A law is credible when it exists and passes plausibility.py; otherwise exponents are null with the
reason and the recommendation is the cells to add (proposals.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nanochat_core.scaling.approach3 import Approach3Fit, fit_approach3
from nanochat_core.scaling.backtest import empty_backtest, run_backtest
from nanochat_core.scaling.budget import MIN_POINTS, BudgetFit, fit_budget, resampled_optima
from nanochat_core.scaling.narrowing import narrowing_cells
from nanochat_core.scaling.plan import plan_for
from nanochat_core.scaling.plausibility import plausibility_problems
from nanochat_core.scaling.proposals import NEXT_BUDGET_STEP, ProposedCell, propose_cells
from nanochat_core.scaling.results_csv import effective_params
from nanochat_core.scaling.shape import (ModelFamily, depth_for_params, effective_params_at, flops_per_token_at,
                                         sweep_family)

MIN_BUDGETS = 3
MIN_DECADES = 0.5
MIN_USABLE = 200   # fewer usable resamples than this give no interval
CI_LEVEL = 0.95


@dataclass
class Estimate:
    value: float | None
    ci: tuple[float, float] | None = None

    def to_json(self) -> dict:
        return {"value": self.value, "ci": list(self.ci) if self.ci else [None, None]}


def interval(values: np.ndarray) -> tuple[float, float] | None:
    """The CI_LEVEL percentile interval of the finite values, or None: too few, or zero width."""
    values = values[np.isfinite(values)]
    if len(values) < MIN_USABLE:
        return None
    tail = 100 * (1 - CI_LEVEL) / 2
    lo, hi = (float(v) for v in np.percentile(values, [tail, 100 - tail]))
    return None if hi - lo <= 1e-12 * max(1.0, abs(hi)) else (lo, hi)


@dataclass
class ScalingFit:
    budgets: list[BudgetFit]
    n_opt_exponent: Estimate = field(default_factory=lambda: Estimate(None))
    d_opt_exponent: Estimate = field(default_factory=lambda: Estimate(None))
    optimal_ratio: Estimate = field(default_factory=lambda: Estimate(None))
    n_law: tuple[float, float] | None = None  # (slope, intercept) of log10 N_opt vs log10 C
    d_law: tuple[float, float] | None = None
    law_reason: str | None = None             # why there are no exponents
    approach3: Approach3Fit | None = None
    recommendation: dict = field(default_factory=dict)
    proposals: list[ProposedCell] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why the law is not credible (empty: credible)
    dropped: list[dict] = field(default_factory=list)
    usable_rows: list[dict] = field(default_factory=list)
    family: ModelFamily | None = None
    bootstrap_requested: int = 0
    bootstrap_usable: int = 0
    interval_note: str | None = None          # why Approach 2 has no intervals
    warnings: list[str] = field(default_factory=list)
    backtest: dict | None = None              # backtest.py: the law on the other budgets vs a held-out one
    plan: list[dict] = field(default_factory=list)  # plan.py: one entry per target budget

    @property
    def credible(self) -> bool:
        return self.n_law is not None and not self.problems

    @property
    def bracketed(self) -> list[BudgetFit]:
        return [b for b in self.budgets if b.bracketed]

    def to_json(self) -> dict:
        a3 = self.approach3
        return {
            "n_opt_exponent": self.n_opt_exponent.to_json(),
            "d_opt_exponent": self.d_opt_exponent.to_json(),
            "optimal_ratio": self.optimal_ratio.to_json(),
            "budgets": [b.to_json() for b in self.budgets],
            "recommendation": self.recommendation,
            "dropped": self.dropped,
            "credible": self.credible,
            "problems": self.problems,
            "approach3": a3.to_json() if a3 else None,
            "law_reason": self.law_reason,
            "bootstrap": {"approach2": {"requested": self.bootstrap_requested, "usable": self.bootstrap_usable,
                                        "note": self.interval_note},
                          "approach3": {"requested": a3.bootstrap_requested if a3 else 0,
                                        "usable": a3.bootstrap_usable if a3 else 0, "note": a3.reason if a3 else None}},
            "model_family": self.family.to_json() if self.family else None,
            "warnings": self.warnings,
            "backtest": self.backtest,
            "plan": self.plan,
        }


def _where(row: dict) -> str:
    line = f"line {row['_line']}: " if row.get("_line") is not None else ""
    return f"{line}budget {row.get('flops_budget')!r} depth {row.get('depth')!r}"


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def prepare_rows(rows: list[dict], family: ModelFamily | None, notes: list[str]) -> tuple[list[dict], list[dict]]:
    """(usable rows with "_n" and "_d", dropped row references with reasons)."""
    usable, dropped = [], []
    for row in rows:
        bpb, budget, depth = row.get("val_bpb"), row.get("flops_budget"), row.get("depth")
        n, d = effective_params(row), row.get("tokens_trained")
        reason = None
        if not _finite(bpb) or bpb <= 0:
            reason = f"val_bpb is {'empty' if bpb is None else bpb} (must be a positive number)"
        elif not _finite(budget) or budget <= 0:
            reason = f"flops_budget is {'empty' if budget is None else budget}"
        elif n is None and not (depth and family):
            reason = "params columns empty and no depth with a recorded model shape to count them from"
        elif not d and not (depth and family):
            reason = "tokens_trained empty and no depth with a recorded model shape to derive it from"
        if reason is None and n is None:
            # nanochat's own sweep left the params columns blank (runs/scaling_laws.sh grepped its logs).
            n = effective_params_at(depth, family)
            notes.append(f"{_where(row)}: params columns empty, N={n:,} counted from the depth ({family.describe()})")
        if reason is None and not d:
            d = int(budget / flops_per_token_at(depth, family))
            notes.append(f"{_where(row)}: tokens_trained empty, taken as budget / FLOPs per token = {d:,}")
        if reason is None and n <= 0:
            reason = f"effective params N={n} is not positive"
        if reason is not None:
            ref = {"flops_budget": budget if _finite(budget) else None, "depth": depth,
                   "val_bpb": bpb if _finite(bpb) else None, "reason": reason}
            if row.get("_line") is not None:
                ref["line"] = row["_line"]
            dropped.append(ref)
            notes.append(f"row left out, {_where(row)}: {reason}")
            continue
        usable.append({**row, "_n": float(n), "_d": float(d)})
    return usable, dropped


def _slopes(log_c: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of log_y (S, B) against log_c (B,)."""
    lc = log_c - log_c.mean()
    return ((log_y - log_y.mean(axis=-1, keepdims=True)) @ lc) / (lc ** 2).sum()


def fit_law(fit: ScalingFit, bootstrap: int, rng: np.random.Generator) -> None:
    """Exponents and ratio from the bracketed budgets (or the reason there are none), with intervals."""
    used = fit.bracketed
    if len(used) < MIN_BUDGETS:
        fit.law_reason = (f"{len(used)} bracketed budget(s) of {len(fit.budgets)}: exponents need at least "
                          f"{MIN_BUDGETS} bracketed budgets")
        return
    log_c = np.log10([b.flops_budget for b in used])
    span = float(log_c.max() - log_c.min())
    if span < MIN_DECADES:
        fit.law_reason = (f"the {len(used)} bracketed budgets span {span:.2f} decades of compute: exponents need "
                          f"at least {MIN_DECADES}")
        return
    log_n, log_d = np.log10([b.n_opt for b in used]), np.log10([b.d_opt for b in used])
    fit.n_law, fit.d_law = tuple(np.polyfit(log_c, log_n, 1)), tuple(np.polyfit(log_c, log_d, 1))
    ratio = float(10 ** (log_d.mean() - log_n.mean()))  # at the budgets' geometric mean (the lines pass through the means)
    cis = [None, None, None]
    fit.bootstrap_requested = bootstrap
    dof = sum(b.points - MIN_POINTS for b in used)
    if bootstrap <= 0:
        fit.interval_note = "no bootstrap asked for"
    elif dof == 0:
        fit.interval_note = (f"every bracketed budget has exactly {MIN_POINTS} points, so each parabola fits them "
                             "exactly and leaves no residual to estimate the noise from: no intervals (add a depth "
                             "or repeat cells)")
    else:
        sigma = math.sqrt(sum(float(((b.val_bpb - b.fitted()) ** 2).sum()) for b in used) / dof)
        draws = [resampled_optima(b, sigma, bootstrap, rng) for b in used]
        boot_n, boot_d = np.stack([d[0] for d in draws], axis=1), np.stack([d[1] for d in draws], axis=1)
        ok = np.isfinite(boot_n).all(axis=1)  # a resample with no inside minimum in some budget is not usable
        fit.bootstrap_usable = int(ok.sum())
        boot_n, boot_d = boot_n[ok], boot_d[ok]
        cis = [interval(_slopes(log_c, boot_n)), interval(_slopes(log_c, boot_d)),
               interval(10 ** (boot_d.mean(axis=1) - boot_n.mean(axis=1)))]
        if fit.bootstrap_usable < MIN_USABLE:
            fit.interval_note = (f"only {fit.bootstrap_usable} of {bootstrap} resamples usable (< {MIN_USABLE}): "
                                 "no intervals")
        elif None in cis:
            fit.interval_note = "some resampled estimates did not vary (zero-width interval): not reported"
    fit.n_opt_exponent = Estimate(float(fit.n_law[0]), cis[0])
    fit.d_opt_exponent = Estimate(float(fit.d_law[0]), cis[1])
    fit.optimal_ratio = Estimate(ratio, cis[2])


def _recommend(fit: ScalingFit, budget: float) -> dict:
    rec = {"flops_budget": None, "depth": None, "params": None, "tokens": None,
           "cells_to_add": [c.to_json() for c in fit.proposals]}
    if fit.n_law is None:
        return rec  # no law: never an extrapolated model, only the cells to add
    lc = math.log10(budget)
    params, tokens = 10 ** (fit.n_law[0] * lc + fit.n_law[1]), 10 ** (fit.d_law[0] * lc + fit.d_law[1])
    depth = depth_for_params(params, fit.family) if fit.family else None
    return {**rec, "flops_budget": budget, "depth": depth, "params": float(params), "tokens": float(tokens)}


def _disagreement(fit: ScalingFit) -> list[str]:
    """Approach 2 and 3 exponents whose intervals do not overlap."""
    a3, notes = fit.approach3, []
    for key in ("n_opt_exponent", "d_opt_exponent"):
        two, three = getattr(fit, key), (a3.values.get(key), a3.cis.get(key))
        if two.ci and three[1] and (two.ci[1] < three[1][0] or three[1][1] < two.ci[0]):
            notes.append(f"{key}: Approach 2 gives {two.value:.3f} {list(np.round(two.ci, 3))}, Approach 3 "
                         f"{three[0]:.3f} {list(np.round(three[1], 3))}; the intervals do not overlap")
    return notes


def analyze(rows: list[dict], next_budget: float | None = None, bootstrap: int = 1000, seed: int = 0,
            family: ModelFamily | None = None, target_budgets: int = MIN_BUDGETS, backtest: bool = True,
            backtest_budget: float | None = None, target_flops: list[float] | None = None) -> ScalingFit:
    """Fit rows (as read_scaling_csv returns them). `family` states the shape of rows that recorded
    none (nanochat's own CSVs); rows recording different families raise ModelFamilyError.
    backtest: hold out `backtest_budget` (default the largest; BacktestBudgetError when the rows do
    not have it) and predict it from the rest. The plan covers the next budget and every target_flops."""
    notes: list[str] = []
    family, family_note = sweep_family(rows, family)
    if family_note and family is None and rows:
        notes.append(f"model shape unknown ({family_note}): no depth can be named")
    usable, dropped = prepare_rows(rows, family, notes)
    by_budget: dict[float, list[dict]] = {}
    for row in usable:
        by_budget.setdefault(row["flops_budget"], []).append(row)
    fit = ScalingFit([fit_budget(c, by_budget[c]) for c in sorted(by_budget)], dropped=dropped, usable_rows=usable,
                     family=family, warnings=notes)
    rng = np.random.default_rng(seed)
    fit_law(fit, bootstrap, rng)
    fit.approach3 = fit_approach3(*(np.array([r[k] for r in usable], dtype=float)
                                    for k in ("_n", "_d", "val_bpb", "flops_budget")),
                                  bootstrap=bootstrap, rng=rng, ci_of=interval, min_usable=MIN_USABLE)
    fit.proposals = propose_cells(fit.budgets, fit.n_law, family, target_budgets, next_budget)
    largest = max(by_budget) if by_budget else 0.0
    fit.recommendation = _recommend(fit, float(next_budget) if next_budget else largest * NEXT_BUDGET_STEP)

    if fit.n_law is None:
        fit.problems.append(f"no law: {fit.law_reason}")
        fit.problems += [f"budget {b.flops_budget:.3g}: {b.reason}" for b in fit.budgets if not b.bracketed]
    else:
        notes += [f"budget {b.flops_budget:.3g} not used: {b.reason}" for b in fit.budgets if not b.bracketed]
        fit.problems += plausibility_problems(fit.n_opt_exponent.value, fit.d_opt_exponent.value,
                                              fit.optimal_ratio.value, fit.recommendation["depth"],
                                              [r["depth"] for r in usable if r.get("depth")])
        notes += _disagreement(fit)
    if not usable:
        fit.problems.append("no usable row")
    fit.backtest = (run_backtest(usable, fit.budgets, backtest_budget, bootstrap, rng, interval, MIN_USABLE)
                    if backtest else empty_backtest("not asked for (--backtest-budget none)"))
    targets = [float(next_budget) if next_budget else largest * NEXT_BUDGET_STEP] if usable else []
    targets += [float(t) for t in target_flops or [] if float(t) not in targets]
    fit.plan = [plan_for(t, fit.approach3, family, usable, rng) for t in targets]
    # The ladder's target_ci_width rule: the cells expected to narrow the N_opt exponent's interval most.
    _, candidates, why = narrowing_cells(usable, fit.budgets, fit.n_law, fit.approach3, family, rng, interval,
                                         MIN_USABLE)
    ci = fit.n_opt_exponent.ci
    fit.recommendation.update(n_opt_exponent_ci_width=(ci[1] - ci[0]) if ci else None,
                              cells_to_narrow=[c.to_json() for c in candidates[0]] if candidates else [],
                              narrowing_candidates=[[c.to_json() for c in cells] for cells in candidates],
                              narrowing_note=why)
    return fit

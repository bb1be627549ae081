"""Which cells would narrow the N_opt exponent's interval most (the ladder's target_ci_width rule).

Candidates: the next budget half a decade beyond the span, two depths on each side of the law's
predicted optimum there, or one more depth beside a bracketed
budget's optimum (the unmeasured neighbour of its measured range nearer the optimum). Each is
scored by simulation: its cells get the value the parametric law (Approach 3 on every budget)
predicts for them, the budgets are refitted, and the same parametric bootstrap as the law's
interval (fit.fit_law: the parabolas plus noise of the measured pooled spread) gives the interval
the grid would have. The candidate with the narrowest expected interval comes first. An expected
width, not a promise: the measurement will scatter around the law.
"""
from __future__ import annotations

import math

import numpy as np

from nanochat_core.scaling.approach3 import Approach3Fit, _log_pred
from nanochat_core.scaling.budget import MIN_POINTS, BudgetFit, fit_budget, resampled_optima
from nanochat_core.scaling.proposals import NEXT_BUDGET_STEP, ProposedCell, extend_budget
from nanochat_core.scaling.shape import ModelFamily, effective_params_at, flops_per_token_at

SIMULATED_RESAMPLES = 1000
MIN_NARROWING = 0.95  # expected width / current width below which a candidate counts


def pooled_sigma(budgets: list[BudgetFit]) -> float | None:
    used = [b for b in budgets if b.bracketed]
    dof = sum(b.points - MIN_POINTS for b in used)
    if not dof:
        return None
    return math.sqrt(sum(float(((b.val_bpb - b.fitted()) ** 2).sum()) for b in used) / dof)


def exponent_interval_width(budgets: list[BudgetFit], sigma: float, rng: np.random.Generator, ci_of,
                            min_usable: int, samples: int = SIMULATED_RESAMPLES) -> float | None:
    """Width of the interval (ci_of: the fit's interval rule) of the N_opt exponent the bracketed
    budgets give; None with fewer than min_usable usable resamples or two bracketed budgets."""
    used = [b for b in budgets if b.bracketed]
    if len(used) < 2:
        return None
    log_c = np.log10([b.flops_budget for b in used])
    boot = np.stack([resampled_optima(b, sigma, samples, rng)[0] for b in used], axis=1)
    boot = boot[np.isfinite(boot).all(axis=1)]
    if len(boot) < min_usable:
        return None
    lc = log_c - log_c.mean()
    slopes = ((boot - boot.mean(axis=1, keepdims=True)) @ lc) / (lc ** 2).sum()  # as fit.fit_law's
    ci = ci_of(slopes)
    return None if ci is None else ci[1] - ci[0]


def _simulated_row(cell: ProposedCell, fit3: Approach3Fit, family: ModelFamily) -> dict:
    n = float(effective_params_at(cell.depth, family))
    d = cell.flops_budget / flops_per_token_at(cell.depth, family)
    bpb = float(np.exp(_log_pred(fit3.theta, np.log(n), np.log(d))[0])[0])
    return {"flops_budget": cell.flops_budget, "depth": cell.depth, "_n": n, "_d": d, "val_bpb": bpb}


def _next_budget(budgets: list[BudgetFit], n_law, family: ModelFamily) -> list[ProposedCell]:
    """Half a decade beyond the largest budget: the two depths whose N straddle the law's N_opt there,
    and one grid step beyond each, so the lowest point keeps a neighbour on each side even when the
    two middle ones come out nearly equal (three cells centred on the nearest depth often left the
    optimum at an edge)."""
    budget = max(b.flops_budget for b in budgets) * NEXT_BUDGET_STEP
    n_opt = 10 ** (n_law[0] * math.log10(budget) + n_law[1])
    bracketed = [b for b in budgets if b.bracketed]
    step = max(bracketed, key=lambda b: b.flops_budget).depth_step if bracketed else 1
    below = 1
    while effective_params_at(below + step, family) <= n_opt and below < 256:
        below += step
    depths = [d for d in (below - step, below, below + step, below + 2 * step) if d >= 1]
    why = f"new budget {budget:.3g}: around the law's optimum N {n_opt:.3g} (two depths on each side)"
    return [ProposedCell(budget, d, why) for d in depths]


def _beside_optimum(b: BudgetFit, family: ModelFamily) -> ProposedCell | None:
    known = sorted(d for d in b.depths if d is not None)
    if not known:
        return None
    step = b.depth_step
    sides = [d for d in (known[0] - step, known[-1] + step) if d >= 1]
    if not sides:
        return None
    log_opt = math.log10(b.n_opt)
    depth = min(sides, key=lambda d: abs(math.log10(effective_params_at(d, family)) - log_opt))
    return ProposedCell(b.flops_budget, depth, f"budget {b.flops_budget:.3g}: a depth beside its optimum "
                                               f"(N_opt {b.n_opt:.3g})")


def narrowing_cells(rows: list[dict], budgets: list[BudgetFit], n_law, fit3: Approach3Fit | None,
                    family: ModelFamily | None, rng: np.random.Generator, ci_of,
                    min_usable: int) -> tuple[float | None, list[list[ProposedCell]], str | None]:
    """(the current expected width, the candidates' cells, narrowest expected interval first (the
    ladder takes the first one its bounds allow), why there are none)."""
    if n_law is None:
        return None, [], "no law yet: the cells to add come first"
    if family is None or fit3 is None or fit3.theta is None:
        return None, [], "no recorded model shape or no parametric law to predict new cells with"
    sigma = pooled_sigma(budgets)
    if sigma is None:
        return None, [], "no residual to estimate the noise from (every budget has exactly three points)"
    now = exponent_interval_width(budgets, sigma, rng, ci_of, min_usable)
    bracketed = [b for b in budgets if b.bracketed]
    candidates = [_next_budget(budgets, n_law, family)]
    candidates += [[c] for c in (_beside_optimum(b, family) for b in bracketed) if c is not None]
    # a budget the law's optimum left at an edge: the next depth on that side may bracket it
    candidates += [cells for cells in (extend_budget(b) for b in budgets if not b.bracketed) if cells]
    measured = {(r["flops_budget"], r.get("depth")) for r in rows}
    scored = []
    for cells in candidates:
        cells = [c for c in cells if (c.flops_budget, c.depth) not in measured]
        if not cells:
            continue
        extra = [_simulated_row(c, fit3, family) for c in cells]
        by_budget: dict[float, list[dict]] = {}
        for r in list(rows) + extra:
            by_budget.setdefault(r["flops_budget"], []).append(r)
        width = exponent_interval_width([fit_budget(c, rs) for c, rs in sorted(by_budget.items())], sigma, rng, ci_of,
                                        min_usable)
        # a candidate must narrow it by more than the simulation's own scatter (a few percent) to count
        if width is not None and (now is None or width < MIN_NARROWING * now):
            scored.append((width, len(cells), cells))
    if not scored:
        return now, [], "no candidate cell is expected to narrow the interval"
    ranked = sorted(scored, key=lambda s: (s[0], s[1]))
    return now, [[ProposedCell(c.flops_budget, c.depth, f"{c.why}; expected N_opt exponent interval width "
                                                        f"{width:.2f}" + (f" (now {now:.2f})" if now else ""))
                  for c in cells] for width, _, cells in ranked], None

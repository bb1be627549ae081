"""The cells a grid needs next, read off a fit: the ladder's step (and the recommendation when there is no law).

- An unbracketed budget whose minimum sits at an edge: the next depth on that side (one grid step).
- Fewer budgets than wanted (or all bracketed and still no law): the next budget, half a decade above
  the largest, at its predicted optimal depth and one grid step on each side. The prediction is the
  law's when there is one, else the tokens:params ratio of the largest bracketed budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nanochat_core.scaling.budget import LARGER, SMALLER, BudgetFit
from nanochat_core.scaling.shape import ModelFamily, depth_for_params, depth_for_ratio

NEXT_BUDGET_STEP = 10 ** 0.5  # half a decade


@dataclass(frozen=True)
class ProposedCell:
    flops_budget: float
    depth: int
    why: str

    @property
    def flops_key(self) -> str:
        """The budget as a partition key: 3 significant digits (1e+11, 3.16e+11)."""
        return f"{self.flops_budget:.3g}"

    def to_json(self) -> dict:
        return {"flops_budget": self.flops_budget, "depth": self.depth, "why": self.why}


def extend_budget(fit: BudgetFit) -> list[ProposedCell]:
    step = fit.depth_step
    known = [d for d in fit.depths if d is not None]
    if not known or fit.extend is None:
        return []
    if fit.extend == SMALLER:
        depth = min(known) - step
        if depth < 1:
            depth = min(known) - 1
        if depth < 1:
            return []  # nothing smaller than d1 exists; the reason already says where the minimum is
        return [ProposedCell(fit.flops_budget, depth, f"budget {fit.flops_budget:.3g}: {fit.reason}")]
    assert fit.extend == LARGER
    return [ProposedCell(fit.flops_budget, max(known) + step, f"budget {fit.flops_budget:.3g}: {fit.reason}")]


def next_budget_cells(budgets: list[BudgetFit], n_law: tuple[float, float] | None, family: ModelFamily | None,
                      budget: float) -> list[ProposedCell]:
    bracketed = [b for b in budgets if b.bracketed]
    if family is None or not bracketed:
        return []  # no shape to name a depth with, or no optimum yet to scale from
    anchor = max(bracketed, key=lambda b: b.flops_budget)
    if n_law is not None:
        depth = depth_for_params(10 ** (n_law[0] * math.log10(budget) + n_law[1]), family)
        how = "the law's optimum"
    else:
        depth = depth_for_ratio(budget, anchor.ratio, family)
        how = f"tokens:params {anchor.ratio:.3g} of budget {anchor.flops_budget:.3g}"
    step = anchor.depth_step
    return [ProposedCell(budget, d, f"new budget {budget:.3g}: around its predicted optimum d{depth} ({how})")
            for d in (depth - step, depth, depth + step) if d >= 1]


def propose_cells(budgets: list[BudgetFit], n_law: tuple[float, float] | None, family: ModelFamily | None,
                  target_budgets: int = 3, next_budget: float | None = None) -> list[ProposedCell]:
    """The cells to train next (may be empty: nothing to do, or nothing that can be named)."""
    cells = [c for b in budgets if not b.bracketed for c in extend_budget(b)]
    all_bracketed = all(b.bracketed for b in budgets)
    if budgets and (len(budgets) < target_budgets or (all_bracketed and n_law is None)):
        target = next_budget or max(b.flops_budget for b in budgets) * NEXT_BUDGET_STEP
        cells += next_budget_cells(budgets, n_law, family, target)
    return cells

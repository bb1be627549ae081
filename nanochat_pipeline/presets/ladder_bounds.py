"""A preset's [ladder] table: how far the scaling ladder may grow the grid (presets/__init__.py reads it here).

    [ladder]
    target_budgets = 3      # bracketed budgets wanted before the ladder stops (>= 3 for a law)
    max_depth = 12          # no proposed cell deeper than this
    max_flops = "1e12"      # no proposed budget above this
    max_cells = 12          # at most this many cells beyond the preset's grid, in all
    target_ci_width = 0.3   # optional: go on past a credible law until the N_opt exponent's 95% interval
                            # is at most this wide (off when absent)
"""
from __future__ import annotations

LADDER_KEYS = {"target_budgets", "max_depth", "max_flops", "max_cells", "target_ci_width"}
FLOAT_KEYS = {"max_flops", "target_ci_width"}


def ladder_bounds(where: str, table: dict, depths: list[int], flops: list[float]) -> dict:
    """The table with defaults filled in (twice the deepest depth, ten times the largest budget,
    12 cells, 3 budgets, no interval target); a value of the wrong kind is an error naming it."""
    unknown = sorted(set(table) - LADDER_KEYS)
    if unknown:
        raise ValueError(f"{where} [ladder]: unknown key(s) {unknown}; allowed: {sorted(LADDER_KEYS)}")
    bounds = {"target_budgets": 3, "max_depth": 2 * max(depths), "max_flops": 10 * max(flops), "max_cells": 12,
              "target_ci_width": None}
    for key, value in table.items():
        number = None
        if isinstance(value, bool):
            pass  # TOML's true is not a count
        elif key in FLOAT_KEYS:
            try:
                number = float(value)  # "1e12" or 1e12
            except (TypeError, ValueError):
                pass
        elif isinstance(value, int):
            number = value
        if number is None or number <= 0:
            raise ValueError(f"{where} [ladder] {key}: {value!r} must be a positive "
                             f"{'number' if key in FLOAT_KEYS else 'integer'}")
        bounds[key] = number
    return bounds

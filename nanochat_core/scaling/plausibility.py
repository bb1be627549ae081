"""Is a fitted law believable? Ranges wide enough for every published compute-optimal law.

Chinchilla and its replications put N_opt ~ C^0.46..0.55 and D_opt ~ C^0.45..0.54 with tokens:params
near 20 (nanochat's own sweep: ~10.5); C ~ N D makes the two exponents sum to 1. A law outside these
ranges says more about the grid than about the model, so it is flagged and not called credible.
"""
from __future__ import annotations

N_EXPONENT_RANGE = (0.2, 0.9)
D_EXPONENT_RANGE = (0.1, 0.8)
EXPONENT_SUM_TOLERANCE = 0.15
RATIO_RANGE = (0.5, 500.0)
DEPTH_MARGIN = 2  # a recommended depth this many depths beyond the measured ones is an extrapolation too far


def plausibility_problems(n_exponent: float | None, d_exponent: float | None, ratio: float | None,
                          depth: int | None, measured_depths: list[int]) -> list[str]:
    """One sentence per rule the law breaks; estimates that are None are not judged here."""
    problems = []
    if n_exponent is not None and not N_EXPONENT_RANGE[0] <= n_exponent <= N_EXPONENT_RANGE[1]:
        problems.append(f"N_opt exponent {n_exponent:.3g} is outside the plausible range {list(N_EXPONENT_RANGE)}")
    if d_exponent is not None and not D_EXPONENT_RANGE[0] <= d_exponent <= D_EXPONENT_RANGE[1]:
        problems.append(f"D_opt exponent {d_exponent:.3g} is outside the plausible range {list(D_EXPONENT_RANGE)}")
    if n_exponent is not None and d_exponent is not None and abs(n_exponent + d_exponent - 1) > EXPONENT_SUM_TOLERANCE:
        problems.append(f"the exponents sum to {n_exponent + d_exponent:.3g}, not 1 +- {EXPONENT_SUM_TOLERANCE} "
                        "(C ~ N D makes them sum to 1)")
    if ratio is not None and not RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1]:
        problems.append(f"optimal tokens:params ratio {ratio:.3g} is outside the plausible range {list(RATIO_RANGE)}")
    if depth is not None and measured_depths:
        lo, hi = min(measured_depths), max(measured_depths)
        if not lo - DEPTH_MARGIN <= depth <= hi + DEPTH_MARGIN:
            problems.append(f"the recommended depth {depth} is more than {DEPTH_MARGIN} depths outside the measured "
                            f"range d{lo}..d{hi}")
    return problems

"""One FLOPs budget's isoFLOP curve: is its optimum bracketed, where is it, and its resampled optima.

val_bpb is fitted as a quadratic in x = log10(N) (nanochat's notebook, Approach 2 of Chinchilla).
The fit is used only when the data bracket the optimum: the lowest measured point has a measured
size on each side, the parabola opens upward and its minimum lies inside the measured sizes with a
value between 0 and the budget's worst point. Anything else is reported with the side to extend,
never extrapolated (a parabola through three points at the grid's edge gave exponents of 19).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POINTS = 3  # a parabola needs three distinct sizes
SMALLER, LARGER = "smaller", "larger"


@dataclass
class BudgetFit:
    flops_budget: float
    depths: list[int]
    log_n: np.ndarray
    log_d: np.ndarray
    val_bpb: np.ndarray
    bracketed: bool
    reason: str | None = None      # why the budget is not used (None when bracketed)
    extend: str | None = None      # SMALLER / LARGER: the side the grid must grow on, when known
    coeffs: tuple[float, float, float] | None = None  # val_bpb = c2*x^2 + c1*x + c0 (bracketed only)
    n_opt: float | None = None
    d_opt: float | None = None
    min_val_bpb: float | None = None

    @property
    def points(self) -> int:
        return len(self.val_bpb)

    @property
    def ratio(self) -> float | None:
        return None if self.n_opt is None else self.d_opt / self.n_opt

    @property
    def depth_step(self) -> int:
        """The grid's spacing of depths in this budget (1 when it has one depth)."""
        gaps = np.diff(sorted({d for d in self.depths if d is not None}))
        return int(gaps.min()) if len(gaps) else 1

    def fitted(self) -> np.ndarray:
        return np.polyval(self.coeffs, self.log_n)

    def to_json(self) -> dict:
        return {"flops_budget": self.flops_budget, "n_opt": self.n_opt, "d_opt": self.d_opt, "ratio": self.ratio,
                "min_val_bpb": self.min_val_bpb, "points": self.points, "bracketed": self.bracketed,
                "reason": self.reason, "extend": self.extend}


def token_curve(log_n: np.ndarray, log_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct log N with the mean log tokens at each (repeats of a depth are averaged)."""
    xs = np.unique(log_n)
    return xs, np.array([log_d[log_n == x].mean() for x in xs])


def fit_budget(budget: float, rows: list[dict]) -> BudgetFit:
    """rows: this budget's usable rows (with "_n" and "_d")."""
    order = np.argsort([r["_n"] for r in rows], kind="stable")
    rows = [rows[i] for i in order]
    fit = BudgetFit(budget, [r.get("depth") for r in rows], np.log10([r["_n"] for r in rows]),
                    np.log10([r["_d"] for r in rows]), np.array([r["val_bpb"] for r in rows], dtype=float), False)
    best = int(np.argmin(fit.val_bpb))
    x_best = fit.log_n[best]
    sizes = np.unique(fit.log_n)
    below, above = (sizes < x_best).sum(), (sizes > x_best).sum()
    at = f"d{fit.depths[best]}" if fit.depths[best] is not None else f"N={10 ** x_best:.3g}"
    if below == 0:
        fit.reason, fit.extend = f"minimum at the smallest depth tried ({at}): add a smaller model", SMALLER
        return fit
    if above == 0:
        fit.reason, fit.extend = f"minimum at the largest depth tried ({at}): add a larger one", LARGER
        return fit
    # One measured size on each side of the lowest point implies >= 3 distinct sizes.
    c2, c1, c0 = (float(c) for c in np.polyfit(fit.log_n, fit.val_bpb, 2))
    if c2 <= 0:
        fit.reason = (f"the parabola opens downwards (curvature {c2:.3g}) although {at} is lowest: the points are "
                      "too noisy for a minimum; repeat the cells or add depths around it")
        return fit
    x_opt, minimum = -c1 / (2 * c2), c0 - c1 * c1 / (4 * c2)
    worst = float(fit.val_bpb.max())
    if not 0 < minimum < worst:
        fit.reason = f"the parabola's minimum {minimum:.4g} is not between 0 and the budget's worst point {worst:.4g}"
        return fit
    if not sizes[0] < x_opt < sizes[-1]:
        side = SMALLER if x_opt <= sizes[0] else LARGER
        fit.reason = (f"the parabola's minimum (N={10 ** x_opt:.3g}) lies outside the measured sizes: "
                      f"add a {side} model")
        fit.extend = side
        return fit
    xs, ys = token_curve(fit.log_n, fit.log_d)
    fit.bracketed, fit.coeffs = True, (c2, c1, c0)
    fit.n_opt, fit.d_opt = float(10 ** x_opt), float(10 ** np.interp(x_opt, xs, ys))
    fit.min_val_bpb = float(minimum)
    return fit


def resampled_optima(fit: BudgetFit, sigma: float, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Parametric bootstrap of a bracketed budget: val_bpb* = fitted curve + N(0, sigma^2) noise at the
    measured sizes, refitted. Returns log10 N_opt and log10 D_opt per resample, NaN where the resample
    has no minimum inside the measured sizes (it would need extrapolation: not usable).
    Unlike resampling the points, this stays valid with three sizes per budget."""
    log_n, log_d, _ = resampled_minima(fit, sigma, samples, rng)
    return log_n, log_d


def resampled_minima(fit: BudgetFit, sigma: float, samples: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """resampled_optima and each resample's minimum val_bpb (NaN where not usable)."""
    x = fit.log_n - fit.log_n.mean()  # centring keeps the design well conditioned
    design = np.stack([x ** 2, x, np.ones_like(x)], axis=1)
    y = fit.fitted() + rng.normal(0.0, sigma, size=(samples, len(x)))
    coeffs = y @ np.linalg.pinv(design).T  # (S, 3): least squares for every resample at once
    c2, c1, c0 = coeffs[:, 0], coeffs[:, 1], coeffs[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x_rel = np.where(c2 > 0, -c1 / (2 * c2), np.nan)
        minimum = c0 - c1 * c1 / (4 * c2)
    x_opt = x_rel + fit.log_n.mean()
    xs, ys = token_curve(fit.log_n, fit.log_d)
    inside = (x_opt > xs[0]) & (x_opt < xs[-1])
    x_opt = np.where(inside, x_opt, np.nan)
    return x_opt, np.interp(x_opt, xs, ys), np.where(inside, minimum, np.nan)

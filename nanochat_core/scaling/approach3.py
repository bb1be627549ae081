"""Chinchilla's Approach 3: the parametric law L(N, D) = E + A/N^alpha + B/D^beta over every finite row.

Fitted as in Hoffmann et al. and Besiroglu et al.'s replication: Huber loss (delta 1e-3) on
log L - log L_hat, with log L_hat = logsumexp(a - alpha log N, b - beta log D, e) (A = e^a, B = e^b,
E = e^e), L-BFGS from the best points of a grid of starts. Under C = 6 N D its optimum is
N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6) / N_opt, G = (alpha A / (beta B))^(1/(alpha+beta)).
Intervals: a residual bootstrap on the log scale, every resample refitted at once from the point
estimate (_refit_batch), counted usable when the refit converges inside the bounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

HUBER_DELTA = 1e-3
MIN_ROWS = 6          # five parameters need more rows than that
MIN_BUDGETS = 2       # with one budget, N and D move together and alpha, beta are not separable
MIN_SIZES = 3         # with two model sizes, E + A/N^alpha takes two values: A, alpha and E are not separable
EXPONENT_BOUNDS = (0.0, 3.0)
BOUNDS = [(-5.0, 5.0), (-20.0, 60.0), (-20.0, 60.0), EXPONENT_BOUNDS, EXPONENT_BOUNDS]  # e, a, b, alpha, beta
START_GRID = ([-1.0, 0.0, 1.0], [0.0, 5.0, 10.0, 15.0, 20.0, 25.0], [0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
              [0.1, 0.3, 0.6, 1.0, 1.5], [0.1, 0.3, 0.6, 1.0, 1.5])
REFINED_STARTS = 8    # grid points refined by L-BFGS
KEYS = ["alpha", "beta", "E", "A", "B", "n_opt_exponent", "d_opt_exponent", "optimal_ratio"]


@dataclass
class Approach3Fit:
    values: dict[str, float | None]                  # KEYS -> point estimate (None when not estimable)
    cis: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    reason: str | None = None                        # why nothing (or no interval) could be estimated
    bootstrap_requested: int = 0
    bootstrap_usable: int = 0
    theta: np.ndarray | None = None                  # (e, a, b, alpha, beta) of the point fit (not in fit.json)
    draws: np.ndarray | None = None                  # (S, 5): the usable bootstrap refits
    residuals: np.ndarray | None = None              # log L - log L_hat of the fitted rows

    def to_json(self) -> dict:
        return {k: {"value": self.values.get(k), "ci": list(self.cis.get(k, (None, None)))} for k in KEYS}


def _log_pred(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log L_hat and the softmax weights of its three terms; theta (..., 5) broadcasts over starts."""
    e, a, b, alpha, beta = (theta[..., i:i + 1] for i in range(5))
    terms = np.stack(np.broadcast_arrays(a - alpha * log_n, b - beta * log_d, e), axis=-1)
    top = terms.max(axis=-1, keepdims=True)
    weights = np.exp(terms - top)
    total = weights.sum(axis=-1, keepdims=True)
    return (top + np.log(total))[..., 0], weights / total


def _huber(r: np.ndarray) -> np.ndarray:
    small = np.abs(r) <= HUBER_DELTA
    return np.where(small, 0.5 * r * r, HUBER_DELTA * (np.abs(r) - 0.5 * HUBER_DELTA))


def _jacobian(w: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """d log L_hat / d (e, a, b, alpha, beta), shape (..., rows, 5)."""
    return np.stack([w[..., 2], w[..., 0], w[..., 1], -w[..., 0] * log_n, -w[..., 1] * log_d], axis=-1)


def _objective(theta, log_n, log_d, log_l):
    """Huber loss scaled by 1/delta^2, so its gradient is O(1) and L-BFGS's tolerances mean something."""
    pred, w = _log_pred(theta, log_n, log_d)
    r = pred - log_l
    grad = np.clip(r, -HUBER_DELTA, HUBER_DELTA) @ _jacobian(w, log_n, log_d)
    return float(_huber(r).sum()) / HUBER_DELTA ** 2, grad / HUBER_DELTA ** 2


def _minimize(start, log_n, log_d, log_l):
    from scipy.optimize import minimize  # scipy only when Approach 3 runs

    res = minimize(_objective, start, args=(log_n, log_d, log_l), jac=True, method="L-BFGS-B", bounds=BOUNDS)
    return res.x, float(res.fun)


def _fit_point(log_n, log_d, log_l) -> np.ndarray:
    """Best of the grid's REFINED_STARTS lowest-loss starts, each refined (batched LM), then polished by
    L-BFGS-B (scipy) when that lowers the loss further."""
    grid = np.array(list(product(*START_GRID)))
    pred, _ = _log_pred(grid, log_n, log_d)
    starts = grid[np.argsort(_huber(pred - log_l).sum(axis=-1))[:REFINED_STARTS]]
    refined, _ = _refit_batch(starts, log_n, log_d, np.tile(log_l, (len(starts), 1)))
    best = refined[np.argmin([_objective(t, log_n, log_d, log_l)[0] for t in refined])]
    polished, loss = _minimize(best, log_n, log_d, log_l)
    return polished if loss < _objective(best, log_n, log_d, log_l)[0] else best


def _at_bound(theta: np.ndarray) -> np.ndarray:
    lo, hi = EXPONENT_BOUNDS
    return (theta[..., 3:] < lo + 1e-3).any(axis=-1) | (theta[..., 3:] > hi - 1e-3).any(axis=-1)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched solve; a singular system (the rows leave a direction flat) takes the least-norm step."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(a) @ b


def _refit_batch(theta0: np.ndarray, log_n, log_d, log_l: np.ndarray, iterations: int = 100):
    """Refit every row of log_l (S, rows) from theta0 (5,) or (S, 5) at once: Levenberg-Marquardt on the
    Huber loss through iteratively reweighted least squares (weight 1 inside delta, delta/|r| outside).
    A refit is done when a step gains less than 1e-10 of the loss, or when no damped step lowers it
    (a minimum); done refits leave the batch. Returns (theta (S, 5), converged (S,))."""
    theta = np.broadcast_to(theta0, (len(log_l), 5)).copy()
    damping = np.full(len(log_l), 1e-3)
    converged = np.zeros(len(log_l), dtype=bool)
    lo, hi = np.array(BOUNDS).T
    active = np.arange(len(log_l))
    for _ in range(iterations):
        t, target, lam = theta[active], log_l[active], damping[active]
        pred, w = _log_pred(t, log_n, log_d)
        r = pred - target
        current = _huber(r).sum(axis=-1)
        jac = _jacobian(w, log_n, log_d)
        weight = np.where(np.abs(r) <= HUBER_DELTA, 1.0, HUBER_DELTA / np.maximum(np.abs(r), 1e-300))
        wj = jac * weight[..., None]
        hess = wj.transpose(0, 2, 1) @ jac
        grad = (wj * r[..., None]).sum(axis=1)
        diag = np.einsum("sii->si", hess)
        # A parameter the rows barely move (a term whose weight vanished) gets a floor relative to the
        # others, so the damped system stays solvable.
        diag = np.maximum(diag, 1e-9 * diag.max(axis=-1, keepdims=True)) + 1e-12
        step = _solve(hess + (lam[:, None] * diag)[..., None] * np.eye(5), -grad[..., None])[..., 0]
        trial = np.clip(t + step, lo, hi)
        new = _huber(_log_pred(trial, log_n, log_d)[0] - target).sum(axis=-1)
        better = new <= current
        theta[active] = np.where(better[:, None], trial, t)
        damping[active] = np.where(better, lam / 3, lam * 4)
        done = (better & (current - new <= 1e-10 * current)) | (~better & (lam > 1e8))
        converged[active[done]] = True
        active = active[~done]
        if not len(active):
            break
    return theta, converged


def _derived(theta: np.ndarray, log_c_mid: float) -> dict[str, float]:
    """Parameters and the compute-optimal exponents and tokens:params ratio at C = 10^log_c_mid."""
    e, a, b, alpha, beta = theta
    g_log = (np.log(alpha) + a - np.log(beta) - b) / (alpha + beta)  # ln G
    ln_c6 = log_c_mid * np.log(10) - np.log(6)
    ln_n = g_log + beta / (alpha + beta) * ln_c6
    return {"alpha": alpha, "beta": beta, "E": np.exp(e), "A": np.exp(a), "B": np.exp(b),
            "n_opt_exponent": beta / (alpha + beta), "d_opt_exponent": alpha / (alpha + beta),
            "optimal_ratio": np.exp(ln_c6 - 2 * ln_n)}


def fit_approach3(n: np.ndarray, d: np.ndarray, loss: np.ndarray, budgets: np.ndarray, bootstrap: int,
                  rng: np.random.Generator, ci_of, min_usable: int) -> Approach3Fit:
    """n, d, loss, budgets: one entry per finite row. ci_of(values) -> (lo, hi) or None, the shared interval rule."""
    empty = {k: None for k in KEYS}
    if len(loss) < MIN_ROWS or len(np.unique(budgets)) < MIN_BUDGETS:
        return Approach3Fit(empty, reason=f"{len(loss)} rows over {len(np.unique(budgets))} budget(s): the "
                                          f"parametric law needs >= {MIN_ROWS} rows over >= {MIN_BUDGETS} budgets")
    if len(np.unique(n)) < MIN_SIZES:
        return Approach3Fit(empty, reason=f"{len(np.unique(n))} model size(s): the parametric law needs >= "
                                          f"{MIN_SIZES} sizes to separate A/N^alpha from E (add depths)")
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
    theta = _fit_point(log_n, log_d, log_l)
    if _at_bound(theta):
        return Approach3Fit(empty, reason=f"the fit ran to an exponent bound (alpha={theta[3]:.3g}, beta={theta[4]:.3g} "
                                          f"of {EXPONENT_BOUNDS}): the rows do not pin the law down")
    log_c_mid = float(np.log10(np.unique(budgets)).mean())  # geometric mean of the budgets
    fitted, _ = _log_pred(theta, log_n, log_d)
    residuals = log_l - fitted
    result = Approach3Fit({k: float(v) for k, v in _derived(theta, log_c_mid).items()}, bootstrap_requested=bootstrap,
                          theta=theta, residuals=residuals)
    if bootstrap <= 0:
        return result
    boot_l = fitted + rng.choice(residuals, size=(bootstrap, len(residuals)), replace=True)
    boot, converged = _refit_batch(theta, log_n, log_d, boot_l)
    usable = boot[converged & ~_at_bound(boot)]
    result.bootstrap_usable, result.draws = len(usable), usable
    draws = _derived(usable.T, log_c_mid)
    for k in KEYS:
        ci = ci_of(np.asarray(draws[k], dtype=float)) if len(usable) >= min_usable else None
        if ci is not None:
            result.cis[k] = ci
    if len(usable) < min_usable:
        result.reason = f"only {len(usable)} of {bootstrap} bootstrap refits usable (< {min_usable}): no intervals"
    elif len(result.cis) < len(KEYS):
        result.reason = "some refitted estimates did not vary (zero-width interval): not reported"
    return result

"""isoflop.png: the picture of a ScalingFit, drawing only what was measured or fitted within the measured range.

Left: val_bpb vs N per budget. A bracketed budget shows its points, its parabola over its measured
sizes only, and its optimum; an unbracketed one shows its points (hollow) with the reason in the
legend. The backtest's held-out cells get their predictions (red crosses, 95% prediction intervals). Right: N_opt and D_opt vs C with the power laws over the bracketed budgets' range, or
nothing but the reason when there is no law. Agg backend: no display needed (CI, servers).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from nanochat_core.common.atomic import atomic_path
from nanochat_core.scaling.fit import ScalingFit


def _draw_budgets(ax, fit: ScalingFit, colors: dict) -> None:
    for b in fit.budgets:
        color, n = colors[b.flops_budget], 10 ** b.log_n
        if b.bracketed:
            ax.scatter(n, b.val_bpb, color=color, label=f"C={b.flops_budget:.3g}")
            xs = np.linspace(b.log_n.min(), b.log_n.max(), 200)  # the measured range, never beyond
            ax.plot(10 ** xs, np.polyval(b.coeffs, xs), color=color, lw=1)
            ax.scatter([b.n_opt], [b.min_val_bpb], color=color, marker="*", s=180, edgecolor="black", zorder=3)
        else:
            ax.scatter(n, b.val_bpb, facecolors="none", edgecolors=color,
                       label=textwrap.fill(f"C={b.flops_budget:.3g} not used: {b.reason}", 60))
    _draw_backtest(ax, fit.backtest)
    ax.set_xscale("log")
    ax.set_xlabel("effective params N (transformer + lm_head)")
    ax.set_ylabel("val bpb")
    ax.set_title("IsoFLOP curves (stars: bracketed optima)")
    if fit.budgets:
        ax.legend(fontsize=7)


def _draw_backtest(ax, backtest: dict | None) -> None:
    """The held-out budget's cells as the law on the other budgets predicted them (95% prediction
    intervals), beside their measured points drawn above."""
    cells = (backtest or {}).get("cells") or []
    if not cells:
        return
    n = np.array([c["params"] for c in cells]) * 1.03  # nudged right so the measured point stays visible
    pred = np.array([c["predicted_bpb"] for c in cells])
    err = None
    if all(c["interval"] for c in cells):
        err = np.array([[p - c["interval"][0], c["interval"][1] - p] for c, p in zip(cells, pred)]).T
    label = (f"backtest: C={backtest['held_out_budget']:.3g} predicted from the other budgets "
             f"({backtest['mean_abs_pct_error']:.1f}% mean error)")
    ax.errorbar(n, pred, yerr=err, fmt="x", color="crimson", capsize=3, label=textwrap.fill(label, 60), zorder=4)


def _draw_law(ax, fit: ScalingFit) -> None:
    ax.set_xlabel("FLOPs budget C")
    if fit.n_law is None:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, textwrap.fill(f"no law: {fit.law_reason}", 50), ha="center", va="center",
                transform=ax.transAxes, fontsize=10)
        ax.set_title("Compute-optimal size and data: not estimated")
        return
    used = fit.bracketed
    cs = np.array([b.flops_budget for b in used])
    grid = np.logspace(np.log10(cs.min()), np.log10(cs.max()), 50)
    for law, points, color, name, est in ((fit.n_law, [b.n_opt for b in used], "tab:blue", "N_opt", fit.n_opt_exponent),
                                          (fit.d_law, [b.d_opt for b in used], "tab:orange", "D_opt", fit.d_opt_exponent)):
        ax.scatter(cs, points, color=color)
        ci = f" [{est.ci[0]:.2f}, {est.ci[1]:.2f}]" if est.ci else ""
        ax.plot(grid, 10 ** (law[0] * np.log10(grid) + law[1]), color=color, label=f"{name} ~ C^{est.value:.3f}{ci}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    verdict = "credible" if fit.credible else "NOT credible"
    ax.set_title(f"Compute-optimal size and data ({verdict}; tokens:params = {fit.optimal_ratio.value:.3g})")


def plot_isoflop(fit: ScalingFit, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_iso, ax_law) = plt.subplots(1, 2, figsize=(13, 5))
    budgets = [b.flops_budget for b in fit.budgets]
    colors = {c: plt.cm.viridis(i / max(1, len(budgets) - 1)) for i, c in enumerate(budgets)}
    _draw_budgets(ax_iso, fit, colors)
    _draw_law(ax_law, fit)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path

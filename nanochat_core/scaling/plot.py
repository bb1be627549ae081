"""isoflop.png: the picture of a ScalingFit.

Left: val_bpb vs N per budget with each fitted parabola and its minimum (budgets left out of the
laws are drawn hollow, without a curve). Right: N_opt and D_opt vs C with the power laws and the
recommended next budget. Agg backend: no display needed (CI, servers).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nanochat_core.common.atomic import atomic_path
from nanochat_core.scaling.fit import ScalingFit


def plot_isoflop(fit: ScalingFit, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_iso, ax_law) = plt.subplots(1, 2, figsize=(13, 5))
    budgets = sorted({r["flops_budget"] for r in fit.usable_rows})
    colors = {b: plt.cm.viridis(i / max(1, len(budgets) - 1)) for i, b in enumerate(budgets)}

    for b in fit.budgets:
        color = colors[b.flops_budget]
        ax_iso.scatter(10 ** b.log_n, b.val_bpb, color=color, label=f"C={b.flops_budget:.3g}")
        xs = np.linspace(min(b.log_n.min(), np.log10(b.n_opt)), max(b.log_n.max(), np.log10(b.n_opt)), 200)
        ax_iso.plot(10 ** xs, np.polyval(b.coeffs, xs), color=color, lw=1)
        ax_iso.scatter([b.n_opt], [b.min_val_bpb], color=color, marker="*", s=180, edgecolor="black", zorder=3)
    for ex in fit.excluded:
        color = colors[ex["flops_budget"]]
        ax_iso.scatter([r["_n"] for r in ex["rows"]], [r["val_bpb"] for r in ex["rows"]], facecolors="none",
                       edgecolors=color, label=f"C={ex['flops_budget']:.3g} (left out)")
    ax_iso.set_xscale("log")
    ax_iso.set_xlabel("effective params N (transformer + lm_head)")
    ax_iso.set_ylabel("val bpb")
    ax_iso.set_title("IsoFLOP curves (stars: fitted optima)")
    if budgets:
        ax_iso.legend(fontsize=8)

    if fit.budgets:
        cs = np.array([b.flops_budget for b in fit.budgets])
        ax_law.scatter(cs, [b.n_opt for b in fit.budgets], color="tab:blue", label="N_opt")
        ax_law.scatter(cs, [b.d_opt for b in fit.budgets], color="tab:orange", label="D_opt")
        rec = fit.recommendation
        if fit.n_law and fit.d_law:
            top = max(cs.max(), rec["flops_budget"]) if rec else cs.max()
            grid = np.logspace(np.log10(cs.min()), np.log10(top), 50)
            a, b = fit.n_opt_exponent.value, fit.d_opt_exponent.value
            ax_law.plot(grid, 10 ** (fit.n_law[0] * np.log10(grid) + fit.n_law[1]), color="tab:blue",
                        label=f"N_opt ~ C^{a:.3f}")
            ax_law.plot(grid, 10 ** (fit.d_law[0] * np.log10(grid) + fit.d_law[1]), color="tab:orange",
                        label=f"D_opt ~ C^{b:.3f}")
        if rec:
            ax_law.scatter([rec["flops_budget"]] * 2, [rec["params"], rec["tokens"]], marker="x", color="red",
                           s=80, label=f"next: C={rec['flops_budget']:.3g}, depth {rec['depth']}")
        ax_law.set_xscale("log")
        ax_law.set_yscale("log")
        ax_law.legend(fontsize=8)
    ratio = fit.optimal_ratio.value
    ax_law.set_title("Compute-optimal size and data" + (f" (tokens:params = {ratio:.1f})" if ratio else ""))
    ax_law.set_xlabel("FLOPs budget C")
    fig.tight_layout()

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path

"""One call from a results CSV to fit.json + isoflop.png (the CLI and the pipeline's scaling_results use it)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from nanochat_core.common.atomic import write_json_atomic
from nanochat_core.scaling.results_csv import read_scaling_csv
from nanochat_core.scaling.fit import ScalingFit, ScalingFitWarning, analyze

FIT_FILE = "fit.json"
PLOT_FILE = "isoflop.png"


@dataclass
class AnalysisOutput:
    fit: ScalingFit
    fit_json: Path
    plot: Path
    summary: str  # human-readable, for the terminal and the asset's metadata


def analyze_csv(csv_path: str | Path, output_dir: str | Path | None = None, next_budget: float | None = None,
                bootstrap: int = 1000, seed: int = 0) -> AnalysisOutput:
    """Read the CSV, fit, write fit.json and isoflop.png (next to the CSV unless output_dir is given)."""
    from nanochat_core.scaling.plot import plot_isoflop

    csv_path = Path(csv_path)
    out = Path(output_dir) if output_dir is not None else csv_path.parent
    rows = read_scaling_csv(csv_path)
    with warnings.catch_warnings():
        # Every note also lands in fit.warnings and the summary: don't print them twice.
        warnings.simplefilter("ignore", ScalingFitWarning)
        fit = analyze(rows, next_budget=next_budget, bootstrap=bootstrap, seed=seed)
    fit_json = out / FIT_FILE
    write_json_atomic(fit_json, fit.to_json())
    plot = plot_isoflop(fit, out / PLOT_FILE)
    return AnalysisOutput(fit, fit_json, plot, format_summary(fit, csv_path))


def _est(e, fmt: str) -> str:
    if e.value is None:
        return "n/a"
    ci = f"  [{e.ci[0]:{fmt}}, {e.ci[1]:{fmt}}] 95% CI" if e.ci[0] is not None else ""
    return f"{e.value:{fmt}}{ci}"


def format_summary(fit: ScalingFit, source: Path | None = None) -> str:
    lines = [f"Scaling-law fit{f' of {source}' if source else ''}", ""]
    lines.append(f"{'budget C':>10} {'points':>6} {'N_opt':>10} {'D_opt':>10} {'D/N':>7} {'min bpb':>8}")
    for b in fit.budgets:
        flag = "  (extrapolated minimum)" if b.extrapolated else ""
        lines.append(f"{b.flops_budget:>10.3g} {b.points:>6} {b.n_opt:>10.3g} {b.d_opt:>10.3g} {b.ratio:>7.2f} "
                     f"{b.min_val_bpb:>8.4f}{flag}")
    for ex in fit.excluded:
        lines.append(f"{ex['flops_budget']:>10.3g} {len(ex['rows']):>6}  left out: {ex['reason']}")
    lines += ["",
              f"N_opt ~ C^a:  a = {_est(fit.n_opt_exponent, '.3f')}",
              f"D_opt ~ C^b:  b = {_est(fit.d_opt_exponent, '.3f')}",
              f"optimal tokens:params ratio = {_est(fit.optimal_ratio, '.2f')}"
              + (f"  ({fit.bootstrap_samples} bootstrap resamples)" if fit.bootstrap_samples else "")]
    rec = fit.recommendation
    if rec:
        lines.append(f"next budget {rec['flops_budget']:.3g} FLOPs: depth {rec['depth']}, "
                     f"{rec['params']:.3g} params, {rec['tokens']:.3g} tokens  (model family: {fit.family.describe()})")
    if fit.dropped:
        lines += ["", f"{len(fit.dropped)} row(s) left out:"]
        lines += [f"  {'line ' + str(d['line']) + ': ' if 'line' in d else ''}budget {d['flops_budget']} "
                  f"depth {d['depth']}: {d['reason']}" for d in fit.dropped]
    if fit.warnings:
        lines += ["", "notes:"] + [f"  - {w}" for w in fit.warnings]
    return "\n".join(lines)

"""One call from a results CSV to fit.json + isoflop.png (the CLI and the pipeline's scaling_results use it)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from nanochat_core.common.atomic import write_json_atomic
from nanochat_core.scaling.backtest import backtest_line
from nanochat_core.scaling.fit import Estimate, ScalingFit, analyze
from nanochat_core.scaling.plan import plan_line
from nanochat_core.scaling.results_csv import read_scaling_csv
from nanochat_core.scaling.shape import ModelFamily

FIT_FILE = "fit.json"
PLOT_FILE = "isoflop.png"


@dataclass
class AnalysisOutput:
    fit: ScalingFit
    fit_json: Path
    plot: Path
    summary: str  # human-readable, verdict first, for the terminal and the asset's metadata


def analyze_csv(csv_path: str | Path, output_dir: str | Path | None = None, next_budget: float | None = None,
                bootstrap: int = 1000, seed: int = 0, family: ModelFamily | None = None,
                target_budgets: int = 3, backtest: bool = True, backtest_budget: float | None = None,
                target_flops: list[float] | None = None) -> AnalysisOutput:
    """Read the CSV, fit, write fit.json and isoflop.png (next to the CSV unless output_dir is given).
    backtest_budget: the budget held out (default the largest); backtest=False turns the backtest off."""
    from nanochat_core.scaling.plot import plot_isoflop

    csv_path = Path(csv_path)
    out = Path(output_dir) if output_dir is not None else csv_path.parent
    fit = analyze(read_scaling_csv(csv_path), next_budget=next_budget, bootstrap=bootstrap, seed=seed, family=family,
                  target_budgets=target_budgets, backtest=backtest, backtest_budget=backtest_budget,
                  target_flops=target_flops)
    fit_json = out / FIT_FILE
    # the verdict and the plans as printed, for readers of the file (the main job's summary, the report card)
    write_json_atomic(fit_json, {**fit.to_json(), "verdict": verdict(fit), "plan_lines": [plan_line(p) for p in fit.plan]})
    plot = plot_isoflop(fit, out / PLOT_FILE)
    return AnalysisOutput(fit, fit_json, plot, format_summary(fit, csv_path))


def _est(e: Estimate, fmt: str) -> str:
    if e.value is None:
        return "null"
    return f"{e.value:{fmt}}" + (f" [{e.ci[0]:{fmt}}, {e.ci[1]:{fmt}}]" if e.ci else " (no interval)")


def verdict(fit: ScalingFit) -> str:
    """The first line(s): the credible law, or why there is none and the cells to add; then the backtest."""
    if fit.credible:
        used = fit.bracketed
        span = math.log10(used[-1].flops_budget / used[0].flops_budget)
        lines = [f"credible law: N_opt ~ C^{_est(fit.n_opt_exponent, '.2f')}, D_opt ~ C^{_est(fit.d_opt_exponent, '.2f')}, "
                 f"tokens:params {_est(fit.optimal_ratio, '.3g')} (95% intervals; {len(used)} bracketed budgets over "
                 f"{span:.2f} decades)"]
    else:
        lines = ["no credible law: " + "; ".join(fit.problems)]
        if fit.proposals:
            lines.append("cells to add: " + ", ".join(f"d{c.depth} at {c.flops_key}" for c in fit.proposals))
    lines.append(backtest_line(fit.backtest))
    return "\n".join(lines)


def backtest_table(backtest: dict | None) -> list[str]:
    """The held-out cells, predicted against measured (nothing when there are none)."""
    if not backtest or not backtest["cells"]:
        return []
    lines = ["", f"backtest: Approach 3 fitted on {', '.join(f'{b:.3g}' for b in backtest['fitted_on'])}, "
                 f"predicting {backtest['held_out_budget']:.3g}:",
             f"  {'depth':>5} {'N':>10} {'tokens':>10} {'predicted':>10} {'95% interval':>20} {'measured':>9} {'error':>7}"]
    for c in backtest["cells"]:
        iv = f"[{c['interval'][0]:.4f}, {c['interval'][1]:.4f}]" if c["interval"] else "none"
        error = 100 * (c["predicted_bpb"] - c["measured_bpb"]) / c["measured_bpb"]
        lines.append(f"  {c['depth'] if c['depth'] is not None else '?':>5} {c['params']:>10.3g} {c['tokens']:>10.3g} "
                     f"{c['predicted_bpb']:>10.4f} {iv:>20} {c['measured_bpb']:>9.4f} {error:>+6.1f}%")
    a2 = backtest.get("approach2")
    if a2:
        for key, label, fmt in (("n_opt", "N_opt", ".3g"), ("best_bpb", "best val_bpb", ".4f")):
            e = a2[key]
            ci = f" [{e['ci'][0]:{fmt}}, {e['ci'][1]:{fmt}}]" if e["ci"] else ""
            measured = f"{e['measured']:{fmt}}" if e["measured"] is not None else "not measured (budget not bracketed)"
            lines.append(f"  Approach 2 {label}: predicted {e['value']:{fmt}}{ci}, measured {measured}")
        if a2["reason"]:
            lines.append(f"  Approach 2 intervals: {a2['reason']}")
    elif backtest.get("approach2") is None:
        lines.append("  Approach 2: fewer than 2 of the other budgets are bracketed, no prediction")
    return lines


def format_summary(fit: ScalingFit, source: Path | None = None) -> str:
    lines = [verdict(fit), "", f"Scaling-law fit{f' of {source}' if source else ''}", ""]
    lines.append(f"{'budget C':>10} {'points':>6} {'N_opt':>10} {'D_opt':>10} {'D/N':>7} {'min bpb':>8}")
    for b in fit.budgets:
        if b.bracketed:
            lines.append(f"{b.flops_budget:>10.3g} {b.points:>6} {b.n_opt:>10.3g} {b.d_opt:>10.3g} {b.ratio:>7.2f} "
                         f"{b.min_val_bpb:>8.4f}")
        else:
            lines.append(f"{b.flops_budget:>10.3g} {b.points:>6}  not used: {b.reason}")
    a3 = fit.approach3
    lines += ["", f"{'':24}{'Approach 2 (isoFLOP parabolas)':>34}   Approach 3 (L = E + A/N^alpha + B/D^beta)"]
    for key, label, fmt in (("n_opt_exponent", "N_opt ~ C^a", ".3f"), ("d_opt_exponent", "D_opt ~ C^b", ".3f"),
                            ("optimal_ratio", "tokens:params", ".3g")):
        three = Estimate(a3.values.get(key), a3.cis.get(key)) if a3 else Estimate(None)
        lines.append(f"{label:<24}{_est(getattr(fit, key), fmt):>34}   {_est(three, fmt)}")
    if a3 and a3.values.get("alpha") is not None:
        lines.append(f"{'':24}{'':>34}   alpha {_est(Estimate(a3.values['alpha'], a3.cis.get('alpha')), '.3f')}, "
                     f"beta {_est(Estimate(a3.values['beta'], a3.cis.get('beta')), '.3f')}, "
                     f"E {_est(Estimate(a3.values['E'], a3.cis.get('E')), '.3f')}")
    lines.append(f"bootstrap: Approach 2 {fit.bootstrap_usable} usable of {fit.bootstrap_requested} drawn"
                 + (f" ({fit.interval_note})" if fit.interval_note else "")
                 + (f"; Approach 3 {a3.bootstrap_usable} usable of {a3.bootstrap_requested} drawn" if a3 else "")
                 + (f" ({a3.reason})" if a3 and a3.reason else ""))
    if fit.law_reason:
        lines.append(f"no exponents: {fit.law_reason}")
    rec = fit.recommendation
    if rec.get("flops_budget") is not None:
        depth = f"depth {rec['depth']}" if rec["depth"] is not None else "depth unknown (no recorded model shape)"
        lines.append(f"next budget {rec['flops_budget']:.3g} FLOPs: {depth}, {rec['params']:.3g} params, "
                     f"{rec['tokens']:.3g} tokens")
    lines.append(f"model family: {fit.family.describe() if fit.family else 'unknown'} (as the cells recorded)")
    if fit.proposals:
        lines += ["", "cells to add:"] + [f"  d{c.depth} at {c.flops_key}: {c.why}" for c in fit.proposals]
    lines += backtest_table(fit.backtest)
    if fit.plan:
        lines += ["", "plans (Approach 3 on every budget; 95% intervals):"] + [plan_line(p) for p in fit.plan]
    if fit.dropped:
        lines += ["", f"{len(fit.dropped)} row(s) left out:"]
        lines += [f"  {'line ' + str(d['line']) + ': ' if 'line' in d else ''}budget {d['flops_budget']} "
                  f"depth {d['depth']}: {d['reason']}" for d in fit.dropped]
    if fit.warnings:
        lines += ["", "notes:"] + [f"  - {w}" for w in fit.warnings]
    return "\n".join(lines)

"""How many cells and minutes the ladder's target_ci_width rule needs from the demo's grid to an N_opt
exponent interval of at most --target (README, "Scaling ladder").

A simulation, said as such: the demo's measured grid (tests/scaling_demo_results.csv) is the start;
each round runs the real fit and the real proposal (cells_to_add, then cells_to_narrow) within the
demo's default [ladder] bounds, and each proposed cell is "measured" as the demo's own Approach 3
law predicts it, times exp(noise) with the law's residual scatter (--noise scale of it; 0: exactly
the law). Minutes: each cell's budget over the FLOP rate the demo's cells of that depth measured
(train_time_sec; the deepest measured depth's rate for deeper ones). Real training of these cells
(budgets 7.9e11 and up, minutes each) did not fit this session on a loaded 2-core machine.

    python benchmarks/sim_ladder_demo.py [--target 0.3] [--seeds 3] [--noise 1.0]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from nanochat_core.scaling.approach3 import _log_pred
from nanochat_core.scaling.fit import analyze
from nanochat_core.scaling.plan import measured_flop_rates
from nanochat_core.scaling.results_csv import read_scaling_csv
from nanochat_core.scaling.shape import effective_params_at, flops_per_token_at

DEMO_CSV = Path(__file__).resolve().parent.parent / "tests" / "scaling_demo_results.csv"
MAX_DEPTH, MAX_FLOPS_FACTOR, MAX_CELLS = 8, 10, 12  # the demo's [ladder] defaults (2 x d4, 10 x 2.5e11, 12)


def simulate(target: float, noise: float, seed: int, log) -> dict:
    rows = read_scaling_csv(DEMO_CSV)
    start = analyze(rows, bootstrap=1000, backtest=False)
    theta, family = start.approach3.theta, start.family
    scatter = noise * float(np.std(start.approach3.residuals))
    rates = measured_flop_rates(rows)
    deepest = max(d for d in rates if d is not None)
    max_flops = MAX_FLOPS_FACTOR * max(r["flops_budget"] for r in rows)
    rng = np.random.default_rng(seed)
    added, seconds, fit = [], 0.0, start
    for round_ in range(1, 20):
        rec = fit.recommendation
        width = rec["n_opt_exponent_ci_width"]
        log(f"  round {round_}: credible={fit.credible}, interval width "
            f"{'none' if width is None else f'{width:.3f}'}, cells so far {len(added)}")
        if fit.credible and width is not None and width <= target:
            return {"reached": True, "cells": len(added), "minutes": seconds / 60, "width": width, "added": added}
        have = {(r["flops_budget"], r["depth"]) for r in rows}
        new = []
        # as the ladder: past a credible law the first narrowing candidate its bounds allow, else cells_to_add
        for proposals in (rec["narrowing_candidates"] if fit.credible else [rec["cells_to_add"]]):
            new = [c for c in proposals if c["depth"] <= MAX_DEPTH and c["flops_budget"] <= max_flops
                   and (c["flops_budget"], c["depth"]) not in have][:MAX_CELLS - len(added)]
            if new:
                break
        if not new:
            return {"reached": False, "cells": len(added), "minutes": seconds / 60, "width": width, "added": added,
                    "why": "a bound is reached or nothing is proposed"}
        for c in new:
            n = effective_params_at(c["depth"], family)
            tokens = c["flops_budget"] / flops_per_token_at(c["depth"], family)
            bpb = float(np.exp(_log_pred(theta, np.log(n), np.log(tokens))[0][0] + rng.normal(0, scatter)))
            rows.append(dict(rows[0], flops_budget=c["flops_budget"], depth=c["depth"], params_transformer=None,
                             params_lm_head=None, tokens_trained=int(tokens), val_bpb=bpb, train_time_sec=None,
                             _line=None))
            seconds += c["flops_budget"] / (rates.get(c["depth"]) or rates[deepest])
            added.append(f"d{c['depth']}|{c['flops_budget']:.3g}")
        log(f"    added {', '.join(added[-len(new):])}")
        fit = analyze(rows, bootstrap=1000, backtest=False)
    return {"reached": False, "cells": len(added), "minutes": seconds / 60, "width": None, "added": added,
            "why": "20 rounds"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--noise", type=float, default=1.0, help="scale of the law's residual scatter (0: none)")
    args = parser.parse_args()
    for seed in range(args.seeds):
        print(f"seed {seed} (noise {args.noise} x the law's residual scatter):", flush=True)
        result = simulate(args.target, args.noise, seed, lambda s: print(s, flush=True))
        verdict = "reached" if result["reached"] else f"NOT reached ({result.get('why')})"
        print(f"  {verdict}: {result['cells']} cells, {result['minutes']:.1f} training minutes at the demo's "
              f"measured FLOP rates, final width {result['width'] if result['width'] is None else round(result['width'], 3)}",
              flush=True)
        if math.isclose(args.noise, 0.0):
            break  # no noise: every seed gives the same run


if __name__ == "__main__":
    main()

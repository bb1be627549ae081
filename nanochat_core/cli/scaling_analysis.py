"""`python -m nanochat_core.cli.scaling_analysis RESULTS_CSV [--output-dir DIR]`: fit scaling laws to a sweep.

Reads a results CSV with nanochat's columns (ours, or nanochat's own), writes fit.json and
isoflop.png next to it (or into --output-dir) and prints a summary.
"""
from __future__ import annotations

import argparse
import sys

from nanochat_core.scaling.results_csv import ScalingCSVError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="IsoFLOP scaling-law fit of a scaling sweep's results CSV.")
    parser.add_argument("results_csv", help="results.csv with nanochat's scaling columns")
    parser.add_argument("--output-dir", default=None, help="where fit.json and isoflop.png go (default: the CSV's folder)")
    parser.add_argument("--next-budget", type=float, default=None,
                        help="FLOPs budget to recommend a depth for (default: largest budget x 10^0.5)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (0 = none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)

    from nanochat_core.scaling.analysis import analyze_csv

    try:
        out = analyze_csv(args.results_csv, args.output_dir, args.next_budget, args.bootstrap, args.seed)
    except (FileNotFoundError, ScalingCSVError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out.summary)
    print(f"\nwrote {out.fit_json}\nwrote {out.plot}")
    if not out.fit.budgets:
        print("error: no budget could be fitted (see the notes above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

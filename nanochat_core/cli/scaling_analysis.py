"""`python -m nanochat_core.cli.scaling_analysis RESULTS_CSV [--backtest-budget C|none] [--target-flops C]... [--strict]`:
fit scaling laws to a sweep, backtest them on a held-out budget, plan a target budget.

Reads a results CSV with nanochat's columns (ours, or nanochat's own), writes fit.json and
isoflop.png next to it (or into --output-dir) and prints the verdict first, then the fit. Exit 0
whether or not the law is credible (an unbracketed grid is a result, not an error); 2 under
--strict when it is not, and 2 for a file that cannot be read.
"""
from __future__ import annotations

import argparse
import sys

from nanochat_core.scaling.backtest import BacktestBudgetError
from nanochat_core.scaling.results_csv import ScalingCSVError
from nanochat_core.scaling.shape import ModelFamilyError, parse_family

NOT_CREDIBLE_EXIT = 2
NO_BACKTEST = "none"


def _budget_or_none(text: str) -> float | str:
    if text.strip().lower() == NO_BACKTEST:
        return NO_BACKTEST
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a FLOPs budget nor {NO_BACKTEST!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a budget must be positive")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="IsoFLOP scaling-law fit of a scaling sweep's results CSV.")
    parser.add_argument("results_csv", help="results.csv with nanochat's scaling columns")
    parser.add_argument("--output-dir", default=None, help="where fit.json and isoflop.png go (default: the CSV's folder)")
    parser.add_argument("--next-budget", type=float, default=None,
                        help="FLOPs budget to recommend a depth for (default: largest budget x 10^0.5)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (0 = none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--shape", default=None,
                        help="model shape of rows that recorded none (nanochat's own CSVs), as "
                             "vocab_size=32768,max_seq_len=2048,aspect_ratio=64,head_dim=128,window_pattern=SSSL")
    parser.add_argument("--target-budgets", type=int, default=3,
                        help="bracketed budgets wanted: fewer -> the cells to add include a next budget")
    parser.add_argument("--backtest-budget", default=None, type=_budget_or_none,
                        help="the budget held out and predicted from the others (default: the largest; none: no backtest)")
    parser.add_argument("--target-flops", type=float, action="append", default=[],
                        help="a budget to plan for (repeatable): N_opt, D_opt, depths, predicted val_bpb, hours")
    parser.add_argument("--strict", action="store_true", help=f"exit {NOT_CREDIBLE_EXIT} when there is no credible law")
    args = parser.parse_args(argv)

    from nanochat_core.scaling.analysis import analyze_csv

    try:
        family = parse_family(args.shape) if args.shape else None
        out = analyze_csv(args.results_csv, args.output_dir, args.next_budget, args.bootstrap, args.seed, family,
                          args.target_budgets, backtest=args.backtest_budget != NO_BACKTEST,
                          backtest_budget=None if args.backtest_budget == NO_BACKTEST else args.backtest_budget,
                          target_flops=args.target_flops)
    except (FileNotFoundError, ScalingCSVError, ModelFamilyError, BacktestBudgetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out.summary)
    print(f"\nwrote {out.fit_json}\nwrote {out.plot}")
    return NOT_CREDIBLE_EXIT if args.strict and not out.fit.credible else 0


if __name__ == "__main__":
    sys.exit(main())

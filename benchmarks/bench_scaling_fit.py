"""Benchmark the scaling fit on 100 rows with the bootstrap: the whole analyze() call, and Approach 3's
batched bootstrap refits against refitting each resample with scipy (the baseline, same run).

    python benchmarks/bench_scaling_fit.py [--rows-per-budget 25] [--bootstrap 1000] [--baseline-resamples 40]

Rows: 4 budgets x 25 sizes from a known Chinchilla law with noise (tests/scaling_fixtures.py's
generator, inlined here). Reported: analyze() seconds (both approaches, `--bootstrap` resamples
each; without and with its backtest on the largest budget), the batched refit's seconds per resample, scipy L-BFGS-B's seconds per resample on
`--baseline-resamples` of the same resamples, and the ratio.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from nanochat_core.scaling import approach3
from nanochat_core.scaling.fit import analyze

E, A, ALPHA, B, BETA = 1.69, 406.4, 0.34, 410.7, 0.28
BUDGETS = [1e18, 3e18, 1e19, 3e19]


def rows(per_budget: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for c in BUDGETS:
        n_opt = ((ALPHA * A / (BETA * B)) * (c / 6) ** BETA) ** (1 / (ALPHA + BETA))
        for k, off in enumerate(np.linspace(-0.6, 0.6, per_budget) + 0.1):
            n = n_opt * 10 ** off
            d = c / (6 * n)
            out.append(dict(flops_budget=c, depth=k + 1, params_transformer=int(n), params_lm_head=0,
                            tokens_trained=int(d), val_bpb=E + A / n ** ALPHA + B / d ** BETA + rng.normal(0, 0.003)))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows-per-budget", type=int, default=25)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--baseline-resamples", type=int, default=40)
    args = p.parse_args()
    data = rows(args.rows_per_budget)
    analyze(data[:20], bootstrap=10)  # imports and first-call costs out of the timing

    t = time.perf_counter()
    fit = analyze(data, bootstrap=args.bootstrap, seed=0, backtest=False)
    whole = time.perf_counter() - t
    print(f"analyze(backtest=False): {len(data)} rows, {args.bootstrap} resamples per approach: {whole:.2f} s "
          f"(Approach 2 usable {fit.bootstrap_usable}, Approach 3 usable {fit.approach3.bootstrap_usable}); "
          f"credible={fit.credible}, N_opt exponent {fit.n_opt_exponent.value:.3f} {fit.n_opt_exponent.ci}")
    t = time.perf_counter()
    fit = analyze(data, bootstrap=args.bootstrap, seed=0)
    with_backtest = time.perf_counter() - t
    print(f"analyze() with its default backtest (Approach 3 refitted on 3 budgets with {args.bootstrap} resamples): "
          f"{with_backtest:.2f} s; held-out budget predicted within {fit.backtest['mean_abs_pct_error']:.2f}%, "
          f"coverage {fit.backtest['coverage']}")

    # Approach 3's refits alone: batched (ours) vs one scipy L-BFGS-B per resample (baseline).
    n, d, loss = (np.log(np.array([r[k] for r in data], dtype=float)) for k in ("params_transformer", "tokens_trained", "val_bpb"))
    theta = approach3._fit_point(n, d, loss)
    fitted, _ = approach3._log_pred(theta, n, d)
    rng = np.random.default_rng(1)
    boot = fitted + rng.choice(loss - fitted, size=(args.bootstrap, len(loss)), replace=True)
    t = time.perf_counter()
    approach3._refit_batch(theta, n, d, boot)
    batched = (time.perf_counter() - t) / args.bootstrap
    t = time.perf_counter()
    for row in boot[:args.baseline_resamples]:
        approach3._minimize(theta, n, d, row)
    scipy_each = (time.perf_counter() - t) / args.baseline_resamples
    print(f"Approach 3 refit per resample: batched {1e3 * batched:.2f} ms, scipy L-BFGS-B {1e3 * scipy_each:.2f} ms "
          f"-> batched is {scipy_each / batched:.1f}x faster")


if __name__ == "__main__":
    main()

"""Synthetic scaling sweeps from a known law (our own generator), for the fit and pipeline tests."""
import numpy as np

# Chinchilla's law L = E + A/N^alpha + B/D^beta on isoFLOP curves D = C/(6N): N_opt ~ C^(beta/(alpha+beta)).
E, A, ALPHA, B, BETA = 1.69, 406.4, 0.34, 410.7, 0.28
TRUE_A, TRUE_B = BETA / (ALPHA + BETA), ALPHA / (ALPHA + BETA)
BUDGETS = [1e18, 3e18, 1e19, 3e19]


def true_n_opt(c):
    return ((ALPHA * A / (BETA * B)) * (c / 6) ** BETA) ** (1 / (ALPHA + BETA))


def law_rows(budgets=BUDGETS, sizes=7, span=0.6, offset=0.1, noise=0.002, seed=1):
    """`sizes` models per budget over +-span decades around the true optimum (shifted by offset decades)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        for k, off in enumerate(np.linspace(-span, span, sizes) + offset):
            n = true_n_opt(c) * 10 ** off
            d = c / (6 * n)
            lm_head = int(n * 0.2)
            rows.append(dict(flops_budget=c, depth=4 + 2 * k, params_lm_head=lm_head, params_transformer=int(n) - lm_head,
                             tokens_trained=int(d), val_bpb=E + A / n ** ALPHA + B / d ** BETA + rng.normal(0, noise)))
    return rows

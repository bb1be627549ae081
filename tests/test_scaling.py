"""Scaling CSV and isoFLOP fit: a known power law must come back out; bad rows and thin budgets are reported."""
import json
import math
import warnings

import numpy as np
import pytest

from nanochat_core.cli import scaling_analysis
from nanochat_core.scaling.results_csv import (NANOCHAT_COLUMNS, SCALING_COLUMNS, ScalingCSVError, read_scaling_csv,
                                   write_scaling_csv)
from nanochat_core.scaling.fit import ScalingFitWarning, analyze
from nanochat_core.scaling.shape import effective_params_at, infer_family

# Chinchilla-style loss L = E + A/N^alpha + B/D^beta on isoFLOP curves D = C/(6N). Minimising over N
# gives N_opt ~ C^(beta/(alpha+beta)) and D_opt ~ C^(alpha/(alpha+beta)).
E, A, ALPHA, B, BETA = 1.69, 406.4, 0.34, 410.7, 0.28
TRUE_A, TRUE_B = BETA / (ALPHA + BETA), ALPHA / (ALPHA + BETA)
BUDGETS = [1e18, 2.15e18, 4.64e18, 1e19]


def true_n_opt(c):
    return ((ALPHA * A / (BETA * B)) * (c / 6) ** BETA) ** (1 / (ALPHA + BETA))


def synthetic_rows(noise=0.001, seed=1, budgets=BUDGETS, sizes=7, offset=0.1):
    """Grids of `sizes` models per budget spanning +-0.6 decades, slightly off-centre (as real depth grids are)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        for k, off in enumerate(np.linspace(-0.6, 0.6, sizes) + offset):
            n = true_n_opt(c) * 10 ** off
            d = c / (6 * n)
            lm_head = int(n * 0.2)
            rows.append(dict(flops_budget=c, depth=4 + 2 * k, params_lm_head=lm_head,
                             params_transformer=int(n) - lm_head, tokens_trained=int(d),
                             val_bpb=E + A / n ** ALPHA + B / d ** BETA + rng.normal(0, noise)))
    return rows


def test_header_is_nanochats_plus_ratio(tmp_path):
    assert NANOCHAT_COLUMNS == ("flops_budget,depth,model_dim,params_wte,params_value_embeds,params_lm_head,"
                                "params_transformer,params_scalars,params_total,num_iterations,tokens_trained,"
                                "val_bpb,core_score,train_time_sec").split(",")
    assert SCALING_COLUMNS == NANOCHAT_COLUMNS + ["param_data_ratio"]
    path = write_scaling_csv([dict(flops_budget=1e18, depth=4, params_transformer=900, params_lm_head=100,
                                   tokens_trained=10500, val_bpb=1.5, core_score=None)], tmp_path / "r.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(SCALING_COLUMNS)
    row = dict(zip(SCALING_COLUMNS, lines[1].split(",")))
    assert row["core_score"] == "" and float(row["param_data_ratio"]) == pytest.approx(10.5)
    back = read_scaling_csv(path)[0]
    assert back["tokens_trained"] == 10500 and back["core_score"] is None and back["flops_budget"] == 1e18


def test_reads_nanochat_csv_without_ratio_and_with_blank_params(tmp_path):
    # nanochat's own sweep wrote its 14 columns and left the params columns empty (runs/scaling_laws.sh scraped logs with greps that missed them).
    path = tmp_path / "results.csv"
    path.write_text(",".join(NANOCHAT_COLUMNS) + "\n"
                    "1e18,8,512,,,,,,,1000,524288000,1.05,0.1,600.5\n"
                    "1e18,10,640,,,,,,,800,419430400,nan,,\n")
    rows = read_scaling_csv(path)
    assert rows[0]["depth"] == 8 and rows[0]["params_transformer"] is None and rows[0]["param_data_ratio"] is None
    assert rows[0]["core_score"] == 0.1 and math.isnan(rows[1]["val_bpb"]) and rows[1]["core_score"] is None


def test_bad_csv_errors_name_file_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("flops_budget,val_bpb\n1e18,1.0\n")
    with pytest.raises(ScalingCSVError, match=r"bad\.csv.*depth"):
        read_scaling_csv(bad)
    bad.write_text(",".join(NANOCHAT_COLUMNS) + "\n1e18,eight,,,,,,,,,,1.0,,\n")
    with pytest.raises(ScalingCSVError, match=r"bad\.csv, line 2, column 'depth'"):
        read_scaling_csv(bad)


def test_recovers_known_power_law():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScalingFitWarning)
        fit = analyze(synthetic_rows(), bootstrap=300, seed=0)
    assert len(fit.budgets) == 4 and not fit.dropped
    assert fit.n_opt_exponent.value == pytest.approx(TRUE_A, abs=0.02)
    assert fit.d_opt_exponent.value == pytest.approx(TRUE_B, abs=0.02)
    lo, hi = fit.n_opt_exponent.ci
    assert lo < fit.n_opt_exponent.value < hi and hi - lo < 0.1
    c_mid = 10 ** np.mean(np.log10(BUDGETS))
    n_mid = true_n_opt(c_mid)
    true_ratio = (c_mid / (6 * n_mid)) / n_mid
    assert fit.optimal_ratio.value == pytest.approx(true_ratio, rel=0.1)
    for b in fit.budgets:
        assert b.n_opt == pytest.approx(true_n_opt(b.flops_budget), rel=0.1)
    rec = fit.recommendation
    assert rec["flops_budget"] == pytest.approx(1e19 * 10 ** 0.5)
    assert rec["params"] == pytest.approx(true_n_opt(rec["flops_budget"]), rel=0.15)
    # The recommended depth is the one whose N is nearest the optimum.
    d = rec["depth"]
    gaps = {k: abs(math.log(effective_params_at(k) / rec["params"])) for k in (d - 1, d, d + 1)}
    assert min(gaps, key=gaps.get) == d


def test_nan_rows_and_thin_budgets_are_reported():
    rows = synthetic_rows(budgets=BUDGETS[:3])
    rows[3]["val_bpb"] = float("nan")
    rows[4]["val_bpb"] = 0.0
    rows += [dict(flops_budget=1e20, depth=d, params_transformer=10 ** 9 * d, params_lm_head=10 ** 8,
                  tokens_trained=10 ** 10, val_bpb=1.0) for d in (1, 2)]
    with pytest.warns(ScalingFitWarning) as record:
        fit = analyze(rows, bootstrap=50, next_budget=3e19)
    messages = " | ".join(str(w.message) for w in record)
    assert "val_bpb is nan" in messages and "val_bpb is 0.0" in messages
    assert "budget 1e+20 left out" in messages
    reasons = [d["reason"] for d in fit.dropped]
    assert sum("val_bpb" in r for r in reasons) == 2
    assert sum("distinct model size" in r for r in reasons) == 2
    assert all(d["val_bpb"] is None or math.isfinite(d["val_bpb"]) for d in fit.dropped)  # JSON-safe
    assert [b.flops_budget for b in fit.budgets] == BUDGETS[:3]
    assert fit.recommendation["flops_budget"] == 3e19
    json.dumps(fit.to_json(), allow_nan=False)


@pytest.mark.filterwarnings("ignore:only one budget")
def test_downward_parabola_left_out():
    rows = synthetic_rows(budgets=BUDGETS[:2])
    for r in rows:
        if r["flops_budget"] == BUDGETS[1]:
            r["val_bpb"] = 5.0 - 0.1 * (math.log10(r["params_transformer"]) - 8) ** 2
    with pytest.warns(ScalingFitWarning, match="opens downwards"):
        fit = analyze(rows, bootstrap=20)
    assert [b.flops_budget for b in fit.budgets] == [BUDGETS[0]]
    assert fit.n_opt_exponent.value is None and fit.optimal_ratio.value > 0
    assert fit.recommendation["depth"] >= 1  # from the ratio alone


def test_cli_writes_fit_json_and_png(tmp_path, capsys):
    csv_path = write_scaling_csv(synthetic_rows(), tmp_path / "sweep" / "results.csv")
    out_dir = tmp_path / "out"
    rc = scaling_analysis.main([str(csv_path), "--output-dir", str(out_dir), "--bootstrap", "100", "--seed", "3"])
    assert rc == 0
    fit = json.loads((out_dir / "fit.json").read_text())
    assert list(fit) == ["n_opt_exponent", "d_opt_exponent", "optimal_ratio", "budgets", "recommendation", "dropped"]
    for key in ("n_opt_exponent", "d_opt_exponent", "optimal_ratio"):
        assert set(fit[key]) == {"value", "ci"} and len(fit[key]["ci"]) == 2
    assert set(fit["budgets"][0]) == {"flops_budget", "n_opt", "d_opt", "ratio", "min_val_bpb", "points"}
    assert set(fit["recommendation"]) == {"flops_budget", "depth", "params", "tokens"}
    assert (out_dir / "isoflop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "N_opt ~ C^a" in printed and "fit.json" in printed
    # Default output: next to the CSV.
    assert scaling_analysis.main([str(csv_path), "--bootstrap", "0"]) == 0
    assert (csv_path.parent / "fit.json").is_file() and (csv_path.parent / "isoflop.png").is_file()


def test_cli_missing_file(tmp_path, capsys):
    assert scaling_analysis.main([str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:only one budget")
def test_nanochat_csv_with_blank_params_is_analyzed(tmp_path):
    # nanochat's sweep: params columns empty, model_dim filled -> N counted from depth in the inferred family.
    path = tmp_path / "results.csv"
    path.write_text(",".join(NANOCHAT_COLUMNS) + "\n"
                    "1e18,8,512,,,,,,,1000,524288000,1.10,,\n"
                    "1e18,10,640,,,,,,,800,419430400,1.05,,\n"
                    "1e18,12,768,,,,,,,600,314572800,1.08,,\n")
    with pytest.warns(ScalingFitWarning, match="counted from the depth"):
        fit = analyze(read_scaling_csv(path), bootstrap=0)
    (budget,) = fit.budgets
    assert effective_params_at(8) < budget.n_opt < effective_params_at(12)
    assert not fit.family.inferred  # 64 x depth rounded to 128 is nanochat's default family
    assert fit.recommendation["depth"] > 10


def test_model_family_inferred_from_rows():
    rows = [dict(depth=d, model_dim=dim, params_wte=4096 * dim) for d, dim in ((4, 128), (6, 192), (8, 256))]
    family = infer_family(rows)
    assert (family.aspect_ratio, family.head_dim, family.vocab_size, family.inferred) == (32, 64, 4096, True)


def test_row_from_training_summary(tmp_path):
    from nanochat_core.scaling.results_csv import row_from_training

    summary = {"param_counts": {"wte": 10, "value_embeds": 20, "lm_head": 30, "transformer_matrices": 70,
                                "scalars": 2, "total": 132}, "step": 5, "tokens_trained": 1000, "val_bpb": 1.2,
               "total_training_time": 3.5, "training_seconds": 4.0, "core_score": 0.01}
    row = row_from_training(1e15, 2, 128, summary)
    assert row["core_score"] == 0.01 and row_from_training(1e15, 2, 128, {**summary, "core_score": None})["core_score"] is None
    assert row["params_transformer"] == 70 and row["param_data_ratio"] == 10.0 and row["train_time_sec"] == 3.5
    back = read_scaling_csv(write_scaling_csv([row], tmp_path / "r.csv"))[0]
    assert {k: v for k, v in back.items() if k != "_line"} == row

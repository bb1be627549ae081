"""Scaling CSV, model shape and the scaling_analysis command: the verdict first, --strict, shapes recorded not guessed."""
import json
import math

import pytest

from nanochat_core.cli import scaling_analysis
from nanochat_core.scaling.fit import analyze
from nanochat_core.scaling.results_csv import (NANOCHAT_COLUMNS, SCALING_COLUMNS, SHAPE_COLUMNS, ScalingCSVError,
                                               read_scaling_csv, row_from_training, shape_from_meta, write_scaling_csv)
from nanochat_core.scaling.shape import ModelFamily, ModelFamilyError, effective_params_at, parse_family
from scaling_fixtures import law_rows

FAMILY = ModelFamily(vocab_size=512, max_seq_len=64, aspect_ratio=16, head_dim=16, window_pattern="L")


def test_header_is_nanochats_plus_ratio(tmp_path):
    assert NANOCHAT_COLUMNS == ("flops_budget,depth,model_dim,params_wte,params_value_embeds,params_lm_head,"
                                "params_transformer,params_scalars,params_total,num_iterations,tokens_trained,"
                                "val_bpb,core_score,train_time_sec").split(",")
    assert SCALING_COLUMNS == NANOCHAT_COLUMNS + ["param_data_ratio"] + SHAPE_COLUMNS
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


def test_cli_prints_the_verdict_first_and_writes_fit_json(tmp_path, capsys):
    csv_path = write_scaling_csv(law_rows(), tmp_path / "sweep" / "results.csv")
    out_dir = tmp_path / "out"
    assert scaling_analysis.main([str(csv_path), "--output-dir", str(out_dir), "--bootstrap", "300", "--strict"]) == 0
    fit = json.loads((out_dir / "fit.json").read_text())
    assert list(fit)[:9] == ["n_opt_exponent", "d_opt_exponent", "optimal_ratio", "budgets", "recommendation",
                             "dropped", "credible", "problems", "approach3"]
    assert fit["credible"] is True and fit["problems"] == [] and fit["verdict"].startswith("credible law: N_opt ~ C^")
    assert set(fit["approach3"]) == {"alpha", "beta", "E", "A", "B", "n_opt_exponent", "d_opt_exponent", "optimal_ratio"}
    assert all(set(v) == {"value", "ci"} for v in fit["approach3"].values())
    assert {"bracketed", "reason"} <= set(fit["budgets"][0]) and fit["budgets"][0]["reason"] is None
    assert fit["bootstrap"]["approach2"] == {"requested": 300, "usable": 300, "note": None}
    assert (out_dir / "isoflop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert printed.startswith(f"credible law: N_opt ~ C^{fit['n_opt_exponent']['value']:.2f} [")
    assert "Approach 3" in printed and "300 usable of 300 drawn" in printed
    # Default output: next to the CSV.
    assert scaling_analysis.main([str(csv_path), "--bootstrap", "0"]) == 0
    assert (csv_path.parent / "fit.json").is_file() and (csv_path.parent / "isoflop.png").is_file()


def test_cli_without_a_law_exits_0_and_2_under_strict(tmp_path, capsys):
    csv_path = write_scaling_csv(law_rows(sizes=4, span=0.3, offset=0.6), tmp_path / "results.csv")
    assert scaling_analysis.main([str(csv_path), "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    first, second = printed.splitlines()[:2]
    assert first.startswith("no credible law: no law: 0 bracketed budget(s) of 4")
    assert second.startswith("cells to add: d2 at 1e+18")
    assert scaling_analysis.main([str(csv_path), "--bootstrap", "0", "--strict"]) == scaling_analysis.NOT_CREDIBLE_EXIT
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["credible"] is False and fit["d_opt_exponent"]["value"] is None
    assert fit["approach3"]["alpha"]["value"] is not None  # Approach 3 still fits every row


def test_cli_missing_file(tmp_path, capsys):
    assert scaling_analysis.main([str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_nanochat_csv_with_blank_params_needs_a_stated_shape(tmp_path, capsys):
    # nanochat's sweep: params columns empty, no shape columns. Nothing is guessed: without --shape the
    # rows cannot be counted and are reported; with it, N is counted from the depth in that family.
    path = tmp_path / "results.csv"
    path.write_text(",".join(NANOCHAT_COLUMNS) + "\n"
                    "1e18,8,512,,,,,,,1000,524288000,1.10,,\n"
                    "1e18,10,640,,,,,,,800,419430400,1.05,,\n"
                    "1e18,12,768,,,,,,,600,314572800,1.08,,\n")
    fit = analyze(read_scaling_csv(path), bootstrap=0)
    assert fit.family is None and len(fit.dropped) == 3
    assert fit.dropped[0] == {"flops_budget": 1e18, "depth": 8, "val_bpb": 1.10, "line": 2,
                              "reason": "params columns empty and no depth with a recorded model shape to count them from"}
    nanochat = parse_family("vocab_size=32768,max_seq_len=2048,aspect_ratio=64,head_dim=128,window_pattern=SSSL")
    fit = analyze(read_scaling_csv(path), bootstrap=0, family=nanochat)
    (budget,) = fit.budgets
    assert budget.bracketed and effective_params_at(8, nanochat) < budget.n_opt < effective_params_at(12, nanochat)
    assert any("counted from the depth" in w for w in fit.warnings)
    assert scaling_analysis.main([str(path), "--bootstrap", "0", "--shape", "vocab_size=32768"]) == 2
    assert "give exactly vocab_size=" in capsys.readouterr().err


def test_shape_is_what_the_rows_recorded():
    rows = [{**r, **FAMILY.to_json()} for r in law_rows()]
    assert analyze(rows, bootstrap=0).family == FAMILY
    other = {**rows[5], "aspect_ratio": 32, "_line": 7}
    with pytest.raises(ModelFamilyError, match="2 model families.*line 7"):
        analyze(rows[:5] + [other] + rows[6:], bootstrap=0)
    with pytest.raises(ModelFamilyError, match="line 9: shape column.s. head_dim empty"):
        analyze(rows[:5] + [{**rows[5], "head_dim": None, "_line": 9}], bootstrap=0)
    # Rows without a shape: the law is still fitted, but no depth is named.
    fit = analyze(law_rows(), bootstrap=0)
    assert fit.credible and fit.recommendation["params"] > 0 and fit.recommendation["depth"] is None
    assert any("no recorded model shape" in w for w in fit.warnings)


def test_shape_from_checkpoint_meta_round_trips_through_the_csv(tmp_path):
    meta = {"model_config": {"vocab_size": 512, "sequence_len": 64, "n_embd": 48, "n_head": 3, "n_layer": 3,
                             "n_kv_head": 3, "window_pattern": "L"}, "user_config": {"aspect_ratio": 16}}
    summary = {"param_counts": {"wte": 10, "value_embeds": 20, "lm_head": 30, "transformer_matrices": 70,
                                "scalars": 2, "total": 132}, "step": 5, "tokens_trained": 1000, "val_bpb": 1.2}
    row = row_from_training(1e10, 3, 48, summary, shape_from_meta(meta))
    back = read_scaling_csv(write_scaling_csv([row], tmp_path / "r.csv"))[0]
    assert {k: back[k] for k in SHAPE_COLUMNS} == FAMILY.to_json()


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

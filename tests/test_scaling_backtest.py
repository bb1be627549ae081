"""The backtest (a law fitted on smaller budgets predicting a held-out one), the plan for a target
budget, and thin grids that get a reason instead of a traceback."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nanochat_core.cli import scaling_analysis
from nanochat_core.scaling import approach3
from nanochat_core.scaling.backtest import backtest_line
from nanochat_core.scaling.fit import analyze
from nanochat_core.scaling.results_csv import read_scaling_csv
from scaling_fixtures import ALPHA, BETA, A, B, E, law_rows, true_n_opt

DEMO_CSV = Path(__file__).parent / "scaling_demo_results.csv"
BACKTEST_KEYS = ["held_out_budget", "fitted_on", "cells", "mean_abs_pct_error", "coverage", "approach2", "reason"]
CELL_KEYS = {"depth", "params", "tokens", "predicted_bpb", "interval", "measured_bpb"}
PLAN_KEYS = {"flops", "n_opt", "d_opt", "predicted_bpb", "depths", "hours", "kind", "reason"}


def true_loss(n, d):
    return E + A / n ** ALPHA + B / d ** BETA


def noisy_law_rows(budgets, relative_noise=0.002, seed=7):
    """law_rows' grid (7 sizes per budget around the true optimum) with multiplicative noise."""
    rng = np.random.default_rng(seed)
    rows = law_rows(budgets=budgets, noise=0)
    for r in rows:
        r["val_bpb"] *= 1 + rng.normal(0, relative_noise)
    return rows


@pytest.fixture(scope="module")
def five_budget_fit():
    rows = noisy_law_rows([1e18, 3e18, 1e19, 3e19, 1e20])
    return rows, analyze(rows, bootstrap=500, target_flops=[1e21, 1e23])


def test_backtest_on_a_known_law_predicts_the_held_out_budget(five_budget_fit):
    rows, fit = five_budget_fit
    bt = fit.backtest
    assert list(bt) == BACKTEST_KEYS
    assert bt["held_out_budget"] == 1e20 and bt["fitted_on"] == [1e18, 3e18, 1e19, 3e19] and bt["reason"] is None
    assert len(bt["cells"]) == 7 and all(set(c) == CELL_KEYS for c in bt["cells"])
    measured = sorted(r["val_bpb"] for r in rows if r["flops_budget"] == 1e20)
    assert sorted(c["measured_bpb"] for c in bt["cells"]) == measured  # the held-out rows, nothing else
    # the number reported is the mean of the cells' own errors (computed here another way)
    errors = [abs(c["predicted_bpb"] / c["measured_bpb"] - 1) for c in bt["cells"]]
    assert bt["mean_abs_pct_error"] == pytest.approx(100 * sum(errors) / len(errors), rel=1e-9)
    assert bt["mean_abs_pct_error"] < 1.0
    inside = [c["interval"][0] <= c["measured_bpb"] <= c["interval"][1] for c in bt["cells"]]
    assert bt["coverage"] == pytest.approx(sum(inside) / 7) and bt["coverage"] >= 0.6
    # the predictions are the true law's values to within the noise (0.2%), not just close to the data
    for c in bt["cells"]:
        assert c["predicted_bpb"] == pytest.approx(true_loss(c["params"], c["tokens"]), rel=0.01)
    a2 = bt["approach2"]
    assert a2["fitted_on"] == [1e18, 3e18, 1e19, 3e19]
    assert a2["n_opt"]["value"] == pytest.approx(true_n_opt(1e20), rel=0.3)
    assert a2["n_opt"]["ci"][0] < a2["n_opt"]["value"] < a2["n_opt"]["ci"][1]
    assert backtest_line(bt).startswith("backtest: fitted on 4 budgets, predicted the 1e+20 budget's 7 cells within ")


def test_the_verdict_and_fit_json_carry_the_backtest(tmp_path, capsys):
    out = tmp_path / "out"
    assert scaling_analysis.main([str(DEMO_CSV), "--output-dir", str(out), "--bootstrap", "300"]) == 0
    fit = json.loads((out / "fit.json").read_text())
    bt = fit["backtest"]
    assert bt["held_out_budget"] == 2.5e11 and bt["fitted_on"] == [2.5e10, 8e10] and len(bt["cells"]) == 4
    assert {c["depth"] for c in bt["cells"]} == {1, 2, 3, 4}
    assert all(c["interval"] and c["interval"][0] < c["predicted_bpb"] < c["interval"][1] for c in bt["cells"])
    assert bt["approach2"]["best_bpb"]["measured"] == pytest.approx(
        next(b["min_val_bpb"] for b in fit["budgets"] if b["flops_budget"] == 2.5e11))
    line = fit["verdict"].splitlines()[1]
    assert line == backtest_line(bt) and "predicted the 2.5e+11 budget's 4 cells within" in line
    printed = capsys.readouterr().out
    assert printed.splitlines()[1] == line  # the terminal shows it right under the law
    import dagster as dg

    from nanochat_pipeline.cli.run_records import scaling_verdict
    with dg.instance_for_test() as instance:  # the main job's and status's scaling line carry it too
        assert scaling_verdict(instance, out / "fit.json").splitlines()[1] == f"  {line}"


def test_another_held_out_budget_none_and_a_budget_the_rows_lack(tmp_path, capsys):
    out = tmp_path / "out"
    assert scaling_analysis.main([str(DEMO_CSV), "--output-dir", str(out), "--bootstrap", "0",
                                  "--backtest-budget", "8e10"]) == 0
    bt = json.loads((out / "fit.json").read_text())["backtest"]
    assert bt["held_out_budget"] == 8e10 and bt["fitted_on"] == [2.5e10, 2.5e11]
    assert bt["coverage"] is None and "no prediction intervals" in bt["reason"]  # --bootstrap 0: no interval
    assert scaling_analysis.main([str(DEMO_CSV), "--output-dir", str(out), "--bootstrap", "0",
                                  "--backtest-budget", "none"]) == 0
    bt = json.loads((out / "fit.json").read_text())["backtest"]
    assert list(bt) == BACKTEST_KEYS and bt["cells"] == [] and bt["reason"].startswith("not asked for")
    assert scaling_analysis.main([str(DEMO_CSV), "--output-dir", str(out), "--backtest-budget", "1e12"]) == 2
    assert "--backtest-budget 1e+12: not a budget of these rows (2.5e+10, 8e+10, 2.5e+11)" in capsys.readouterr().err


def test_two_budgets_get_a_null_backtest_with_the_reason():
    fit = analyze(law_rows(budgets=[1e18, 1e19]), bootstrap=0)
    bt = fit.backtest
    assert bt["held_out_budget"] == 1e19 and bt["fitted_on"] == [1e18] and bt["cells"] == []
    assert bt["mean_abs_pct_error"] is None and bt["coverage"] is None
    assert "Approach 3 on the other 1 budget(s)" in bt["reason"] and ">= 2 budgets" in bt["reason"]
    assert backtest_line(bt).startswith("backtest of the 1e+19 budget: not known (")


def test_plan_finds_the_true_optimum_and_labels_a_projection(five_budget_fit):
    rows, fit = five_budget_fit
    assert [p["flops"] for p in fit.plan] == pytest.approx([1e20 * 10 ** 0.5, 1e21, 1e23])  # next budget, then targets
    for p in fit.plan:
        assert PLAN_KEYS <= set(p)
        n, d = true_n_opt(p["flops"]), p["flops"] / (6 * true_n_opt(p["flops"]))
        assert p["n_opt"]["value"] == pytest.approx(n, rel=0.10)
        assert p["d_opt"]["value"] == pytest.approx(d, rel=0.10)
        assert p["predicted_bpb"]["value"] == pytest.approx(true_loss(n, d), rel=0.01)
        assert p["n_opt"]["ci"][0] < p["n_opt"]["value"] < p["n_opt"]["ci"][1]
        # no shape was recorded and no cell timed: said, not guessed
        assert p["depths"] is None and p["hours"] is None and "no recorded model shape" in p["reason"]
    assert [p["kind"] for p in fit.plan] == ["prediction", "prediction", "projection"]  # 1e23 is 1000x 1e20
    assert "1e+03x the largest fitted budget" in fit.plan[2]["warning"] and fit.plan[1]["warning"] is None


def test_plan_on_the_demo_names_depths_and_hours(tmp_path):
    fit = analyze(read_scaling_csv(DEMO_CSV), bootstrap=300, target_flops=[1e12])
    plan = fit.plan[1]
    assert plan["flops"] == 1e12 and plan["kind"] == "prediction" and plan["reason"] is None
    depths = [d["depth"] for d in plan["depths"]]
    assert depths == list(range(depths[0], depths[0] + 3))
    from nanochat_core.scaling.shape import depth_for_params, effective_params_at
    assert depths[1] == depth_for_params(plan["n_opt"]["value"], fit.family)
    assert [d["params"] for d in plan["depths"]] == [effective_params_at(d, fit.family) for d in depths]
    # hours at the FLOP rate the grid's own cells of that depth measured (median budget / seconds)
    rows = read_scaling_csv(DEMO_CSV)
    rate = float(np.median([r["flops_budget"] / r["train_time_sec"] for r in rows if r["depth"] == depths[1]]))
    assert plan["hours"] == pytest.approx(1e12 / rate / 3600)


def _write_rows(rows, path, keep):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if keep(r))
    return path


@pytest.mark.parametrize("name,keep,reason", [
    ("depths 1 and 2", lambda r: r["depth"] in ("1", "2"), "2 model size(s): the parametric law needs >= 3 sizes"),
    ("depths 3 and 4", lambda r: r["depth"] in ("3", "4"), "2 model size(s)"),
    ("depth 1", lambda r: r["depth"] == "1", "3 rows over 3 budget(s)"),
    ("one budget", lambda r: float(r["flops_budget"]) == 2.5e11, "1 budget(s)"),
])
def test_thin_grids_answer_with_a_reason_never_a_traceback(tmp_path, capsys, name, keep, reason):
    with open(DEMO_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    path = _write_rows(rows, tmp_path / "results.csv", keep)
    # in-process: an exception here is the traceback a user would see
    assert scaling_analysis.main([str(path), "--bootstrap", "200", "--target-flops", "1e12"]) == 0
    assert capsys.readouterr().out.startswith("no credible law: ")
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["approach3"]["alpha"]["value"] is None and reason in fit["bootstrap"]["approach3"]["note"]
    assert fit["backtest"]["reason"] and fit["backtest"]["mean_abs_pct_error"] is None
    assert all(p["n_opt"] is None and "no parametric law" in p["reason"] for p in fit["plan"])


def test_a_singular_step_takes_the_least_norm_step():
    # the demo's depths 1 and 2 made the batched Levenberg-Marquardt system singular (LinAlgError);
    # with the size rule lifted the refits must still run to an answer
    rows = [r for r in read_scaling_csv(DEMO_CSV) if r["depth"] in (1, 2)]
    singular = np.zeros((2, 5, 5))
    singular[:, 0, 0] = 1.0
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.solve(singular, np.ones((2, 5, 1)))
    step = approach3._solve(singular, np.ones((2, 5, 1)))
    assert np.isfinite(step).all() and step[0, 0, 0] == pytest.approx(1.0)
    from nanochat_core.scaling.fit import prepare_rows
    from nanochat_core.scaling.shape import sweep_family
    usable, _ = prepare_rows(rows, sweep_family(rows)[0], [])
    n, d, loss = (np.log([r[k] for r in usable]) for k in ("_n", "_d", "val_bpb"))
    theta0 = np.array([0.0, 5.0, 5.0, 0.6, 0.3])
    noisy = loss + np.random.default_rng(0).normal(0, 0.02, size=(300, len(loss)))
    theta, converged = approach3._refit_batch(theta0, n, d, noisy)
    assert np.isfinite(theta).all() and converged.any()


def test_scaling_results_shows_the_backtest_plan_and_declared_cells(tmp_base_dir, tmp_path):
    """The demo's measured cells reported to a real instance: scaling_results' fit.json and metadata
    carry the backtest (predictions and measurements) and the plan."""
    import dagster as dg

    from helpers import tiny_defs, write_tiny_preset
    from nanochat_core.scaling.results_csv import SCALING_COLUMNS
    from nanochat_pipeline.ladder import read_fit

    rows = read_scaling_csv(DEMO_CSV)
    flops = ["2.5e10", "8e10", "2.5e11"]
    defs, preset = tiny_defs(write_tiny_preset(tmp_path, depths=(1, 2, 3, 4), flops=flops))
    with dg.instance_for_test() as instance:
        for row in rows:
            key = f"d{row['depth']}|{next(f for f in flops if float(f) == row['flops_budget'])}"
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key="base_model", partition=key, metadata={c: row[c] for c in SCALING_COLUMNS if row[c] is not None}))
        result = dg.materialize(list(defs.assets), selection=["scaling_results"], instance=instance,
                                resources=defs.resources)
        [materialization] = result.asset_materializations_for_node("scaling_results")
    metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    fit = read_fit(preset)
    bt = fit["backtest"]
    assert bt["held_out_budget"] == 2.5e11 and len(bt["cells"]) == 4
    assert sorted(c["measured_bpb"] for c in bt["cells"]) == sorted(r["val_bpb"] for r in rows
                                                                     if r["flops_budget"] == 2.5e11)
    assert metadata["backtest"] == backtest_line(bt) == fit["verdict"].splitlines()[1]
    assert metadata["backtest_mean_abs_pct_error"] == pytest.approx(bt["mean_abs_pct_error"])
    assert metadata["plan"].startswith("plan for 7.91e+11 FLOPs (prediction): N_opt ")
    assert metadata["declared_cells"] == "12 of the 12 depth x budget partitions are declared cells"


def test_the_isoflop_picture_draws_the_held_out_predictions():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nanochat_core.scaling.plot import _draw_backtest

    bt = {"held_out_budget": 1e20, "mean_abs_pct_error": 1.0, "cells": [
        {"params": 1e8, "predicted_bpb": 2.5, "interval": [2.4, 2.7], "measured_bpb": 2.55},
        {"params": 2e8, "predicted_bpb": 2.4, "interval": [2.3, 2.5], "measured_bpb": 2.41}]}
    fig, ax = plt.subplots()
    _draw_backtest(ax, bt)
    [container] = ax.containers  # one errorbar series: the predictions with their 95% intervals
    line, _, (bars,) = container
    assert list(line.get_ydata()) == [2.5, 2.4]
    lows = sorted(float(seg[0][1]) for seg in bars.get_segments())
    assert lows == pytest.approx([2.3, 2.4])  # the bars run from each interval's low end
    _draw_backtest(ax, {"cells": []})  # no held-out cells (no backtest): nothing more drawn
    assert len(ax.containers) == 1
    plt.close(fig)


def test_the_report_card_shows_the_sweeps_verdict_backtest_and_plan(tmp_path, capsys):
    from nanochat_core.report.card import build_report

    out = tmp_path / "scaling_laws_results_demo"
    assert scaling_analysis.main([str(DEMO_CSV), "--output-dir", str(out), "--bootstrap", "0"]) == 0
    fit = json.loads((out / "fit.json").read_text())
    markdown, report = build_report("d3_2.5e11", tmp_path)
    section = markdown[markdown.index("## Scaling law of the sweep"):].splitlines()
    assert section[2:5] == [f"- {fit['verdict'].splitlines()[0]}", f"- {backtest_line(fit['backtest'])}",
                            f"- {fit['plan_lines'][0]}"]
    assert report["scaling"]["fit_json"] == str(out / "fit.json")
    assert build_report("d3_2.5e11", tmp_path / "elsewhere")[1]["scaling"] is None  # no sweep: no section

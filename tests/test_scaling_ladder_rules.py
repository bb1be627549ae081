"""The ladder's target_ci_width rule: past a credible law it adds the cells expected to narrow the
N_opt exponent's interval most, until the interval is at most that wide or a bound is reached."""
from pathlib import Path

import numpy as np
import pytest

from helpers import write_tiny_preset
from nanochat_core.scaling.approach3 import _log_pred
from nanochat_core.scaling.fit import analyze
from nanochat_core.scaling.results_csv import read_scaling_csv
from nanochat_core.scaling.shape import effective_params_at, flops_per_token_at
from nanochat_pipeline.ladder import next_step
from nanochat_pipeline.presets import PresetError, load_preset

DEMO_CSV = Path(__file__).parent / "scaling_demo_results.csv"
DEMO_FLOPS = ["2.5e10", "8e10", "2.5e11"]


@pytest.fixture(scope="module")
def demo_fit():
    rows = read_scaling_csv(DEMO_CSV)
    return rows, analyze(rows, bootstrap=1000)


def preset_with(tmp_path, ladder: str):
    path = write_tiny_preset(tmp_path, depths=(1, 2, 3, 4), flops=DEMO_FLOPS, extra_sections=f"\n[ladder]\n{ladder}")
    return load_preset(str(path))


def test_target_ci_width_is_validated(tmp_base_dir, tmp_path):
    assert preset_with(tmp_path, "").ladder["target_ci_width"] is None  # off unless asked for
    assert preset_with(tmp_path, "target_ci_width = 0.3\n").ladder["target_ci_width"] == 0.3
    for bad in ("0", "-0.1", '"wide"', "true"):
        with pytest.raises(PresetError, match=r"\[ladder\] target_ci_width: .* must be a positive number"):
            preset_with(tmp_path, f"target_ci_width = {bad}\n")


def test_the_demos_law_is_credible_but_wider_than_0_3_so_the_ladder_narrows_it(tmp_base_dir, tmp_path, demo_fit):
    _, fit = demo_fit
    data = fit.to_json()
    rec = data["recommendation"]
    lo, hi = fit.n_opt_exponent.ci
    assert data["credible"] and rec["n_opt_exponent_ci_width"] == pytest.approx(hi - lo)
    assert rec["n_opt_exponent_ci_width"] > 0.3
    # without a target a credible law stops the ladder; with one, it goes on to the narrowing cells
    assert next_step(data, preset_with(tmp_path, ""), {}, DEMO_FLOPS).stop.startswith("credible law from 3")
    step = next_step(data, preset_with(tmp_path, "target_ci_width = 0.3\nmax_flops = 1e13\n"), {}, DEMO_FLOPS)
    assert step.stop is None and [c["key"] for c in step.cells] == [f"d{c['depth']}|{c['flops_budget']:.3g}"
                                                                      for c in rec["cells_to_narrow"]]
    # a target the interval already meets stops it, saying so
    loose = next_step(data, preset_with(tmp_path, "target_ci_width = 0.9\n"), {}, DEMO_FLOPS)
    assert loose.stop.endswith(f"N_opt exponent interval {hi - lo:.2f} wide (target_ci_width 0.9)")
    # narrowing cells beyond a bound: stopped, naming the bound
    bound = next_step(data, preset_with(tmp_path, "target_ci_width = 0.3\nmax_flops = 3e11\n"), {}, DEMO_FLOPS)
    assert bound.cells == [] and bound.stop.startswith("credible law, N_opt exponent interval wider than "
                                                       "target_ci_width and a bound is reached")
    assert "max_flops" in bound.stop


def test_the_narrowing_cells_narrow_the_interval_as_expected(demo_fit):
    """The proposal's expected width, checked by measuring: add the proposed cells with the values the
    parametric law gives them (plus a little noise), refit, read the interval. (An expectation: cells
    that land far from the law, e.g. leaving the new budget unbracketed, narrow nothing; the ladder
    refits after each round and goes on or stops at a bound.)"""
    rows, fit = demo_fit
    cells = fit.recommendation["cells_to_narrow"]
    assert cells and all("expected N_opt exponent interval width" in c["why"] for c in cells)
    expected = float(cells[0]["why"].split("interval width ")[1].split()[0])
    assert expected < fit.recommendation["n_opt_exponent_ci_width"]
    theta, family, rng = fit.approach3.theta, fit.family, np.random.default_rng(3)
    widths = []
    for _ in range(3):
        extra = []
        for c in cells:
            n = effective_params_at(c["depth"], family)
            tokens = c["flops_budget"] / flops_per_token_at(c["depth"], family)
            bpb = float(np.exp(_log_pred(theta, np.log(n), np.log(tokens))[0])[0]) + rng.normal(0, 0.005)
            row = dict(rows[0], flops_budget=c["flops_budget"], depth=c["depth"], params_transformer=None,
                       params_lm_head=None, tokens_trained=int(tokens), val_bpb=bpb, train_time_sec=None)
            extra.append(row)
        refit = analyze(rows + extra, bootstrap=1000, backtest=False)
        lo, hi = refit.n_opt_exponent.ci
        widths.append(hi - lo)
    # the measured interval narrows from the grid's, to about the expected width
    assert max(widths) < fit.recommendation["n_opt_exponent_ci_width"]
    assert np.median(widths) == pytest.approx(expected, rel=0.35)


def test_the_first_narrowing_candidate_the_bounds_allow_is_taken(tmp_base_dir, tmp_path, demo_fit):
    _, fit = demo_fit
    data = fit.to_json()
    beyond = [{"flops_budget": 1e13, "depth": d, "why": "new budget"} for d in (4, 5)]
    beside = [{"flops_budget": 8e10, "depth": 5, "why": "beside its optimum"}]
    data["recommendation"] = dict(data["recommendation"], cells_to_narrow=beyond,
                                  narrowing_candidates=[beyond, beside])
    preset = preset_with(tmp_path, "target_ci_width = 0.3\nmax_flops = 1e12\n")
    step = next_step(data, preset, {}, DEMO_FLOPS)
    assert [c["key"] for c in step.cells] == ["d5|8e10"]  # the better candidate is out of bounds: the next one
    assert step.held_back == ["d4|1e+13: budget above [ladder] max_flops = 1e+12",
                              "d5|1e+13: budget above [ladder] max_flops = 1e+12"]
    # that cell already measured too: nothing left, the stop names every bound met
    stuck = next_step(data, preset, {"d5|8e10": "already materialized"}, DEMO_FLOPS)
    assert stuck.cells == [] and "d5|8e10: already materialized" in stuck.stop and "max_flops" in stuck.stop

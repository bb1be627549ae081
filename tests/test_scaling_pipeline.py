"""scaling_results' law_is_credible check and the scaling ladder on a real Dagster instance.

Cells are reported as base_model materializations carrying the metadata a training child reports
(rows from a known law over a real model family's N(depth)), so the grid's fit is known in advance;
the sensor, the check and the ladder's bookkeeping are the real ones.
"""
import dagster as dg
import numpy as np
import pytest

from nanochat_core.scaling.results_csv import row_from_training
from nanochat_core.scaling.shape import ModelFamily, effective_params_at
from nanochat_pipeline.ladder import FINGERPRINT_TAG, next_step, read_fit
from nanochat_pipeline.presets.ladder_cells import read_ladder_cells
from scaling_fixtures import A, ALPHA, B, BETA, E
from helpers import materialize, tiny_defs, write_tiny_preset

FAMILY = ModelFamily(vocab_size=320, max_seq_len=64, aspect_ratio=32, head_dim=32, window_pattern="L")
LAW_EXPONENT = BETA / (ALPHA + BETA)
G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))


def budget_with_optimum_at(n_opt: float) -> float:
    """The C whose Chinchilla optimum (C = 6 N D) is n_opt."""
    return 6 * (n_opt / G) ** (1 / LAW_EXPONENT)


# Optima near d3 (0.75x, 1x, 1.3x its N): d3 is the lowest point of each budget, half a decade apart.
N3 = effective_params_at(3, FAMILY)
BUDGET_KEYS = [f"{budget_with_optimum_at(N3 * s):.3g}" for s in (0.75, 1.0, 1.3)]


def law_metadata(depth: int, budget: float) -> dict:
    """The metadata a training child reports for this cell, with val_bpb from the law."""
    n = effective_params_at(depth, FAMILY)
    tokens = int(budget / (6 * n))
    lm_head = FAMILY.vocab_size * depth * FAMILY.aspect_ratio
    counts = {"wte": lm_head, "value_embeds": 0, "lm_head": lm_head, "transformer_matrices": n - lm_head,
              "scalars": 0, "total": n + lm_head}
    summary = {"param_counts": counts, "step": 10, "tokens_trained": tokens,
               "val_bpb": E + A / n ** ALPHA + B / tokens ** BETA, "training_seconds": 1.0}
    row = row_from_training(budget, depth, depth * FAMILY.aspect_ratio, summary, FAMILY.to_json())
    return {k: v for k, v in row.items() if v is not None}


def report_cell(instance, key: str) -> None:
    depth, flops = key.split("|")
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="base_model", partition=key, metadata=law_metadata(int(depth[1:]), float(flops))))


def refit(defs, instance):
    result = materialize(defs, instance, ["scaling_results"], raise_on_error=False)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "law_is_credible"]
    return check


@pytest.fixture
def ladder_preset(tmp_base_dir, tmp_path):
    def make(depths=(3, 4, 5), ladder="target_budgets = 3\nmax_depth = 8\nmax_cells = 6\n"):
        path = write_tiny_preset(tmp_path, depths=depths, flops=BUDGET_KEYS, extra_sections=f"\n[ladder]\n{ladder}")
        return tiny_defs(path)
    return make


def test_check_fails_on_an_unbracketed_grid_and_the_ladder_brackets_it(ladder_preset):
    defs, preset = ladder_preset()
    sensor = defs.get_sensor_def("scaling_ladder_sensor")
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()) as context:
            assert "no fit yet" in sensor(context).skip_message
        for d in preset.depth_keys:
            for f in preset.flops_keys:
                report_cell(instance, f"{d}|{f}")
        check = refit(defs, instance)
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert "minimum at the smallest depth tried (d3): add a smaller model" in check.description
        mat = instance.get_latest_materialization_event(dg.AssetKey("scaling_results")).asset_materialization
        assert list(mat.metadata)[0] == "verdict" and mat.metadata["verdict"].value.startswith("no credible law")
        assert mat.metadata["cells_to_add"].value == ", ".join(f"d2|{f}" for f in BUDGET_KEYS)

        # d2 is a depth of no budget yet: the sensor adds the cells to the grid (requestable after a reload).
        with dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()) as context:
            skipped = sensor(context)
        assert "requested after the code location reloads: " + ", ".join(f"d2|{f}" for f in BUDGET_KEYS) in skipped.skip_message
        assert [(c["depth"], c["flops"]) for c in read_ladder_cells(preset.root)] == [(2, f) for f in BUDGET_KEYS]

        defs, _ = tiny_defs(preset.path)  # the reload: d2 is now a depth of the grid
        sensor = defs.get_sensor_def("scaling_ladder_sensor")
        with dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()) as context:
            result = sensor(context)
        assert sorted(r.partition_key for r in result.run_requests) == sorted(f"d2|{f}" for f in BUDGET_KEYS)
        assert all(r.tags[FINGERPRINT_TAG] and r.run_key.startswith("ladder:d2|") for r in result.run_requests)
        for r in result.run_requests:  # the grid job's runs, as the daemon would launch them
            report_cell(instance, r.partition_key)
        check = refit(defs, instance)
        assert check.passed and check.description.startswith("credible law: N_opt ~ C^0.4")
        fit = read_fit(preset)
        assert fit["credible"] and all(b["bracketed"] for b in fit["budgets"])
        assert fit["n_opt_exponent"]["value"] == pytest.approx(LAW_EXPONENT, abs=0.05)
        with dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()) as context:
            assert sensor(context).skip_message.startswith("ladder stopped: credible law from 3 bracketed budgets")


def test_ladder_respects_its_bounds_and_never_repeats_a_cell(ladder_preset):
    defs, preset = ladder_preset(depths=(3, 4, 5), ladder="target_budgets = 3\nmax_depth = 8\nmax_cells = 2\n")
    fit = {"credible": False, "problems": ["no law"], "budgets": [{"bracketed": False}] * 3,
           "recommendation": {"cells_to_add": [
               {"flops_budget": float(f), "depth": 2, "why": "edge"} for f in BUDGET_KEYS] + [
               {"flops_budget": float(BUDGET_KEYS[0]), "depth": 9, "why": "edge"},
               {"flops_budget": 1e30, "depth": 4, "why": "next budget"}]}}
    step = next_step(fit, preset, {f"d2|{BUDGET_KEYS[0]}": "in flight"}, preset.flops_keys)
    assert [c["key"] for c in step.cells] == [f"d2|{f}" for f in BUDGET_KEYS[1:]]  # max_cells = 2
    assert step.held_back == [f"d2|{BUDGET_KEYS[0]}: in flight",
                              f"d9|{BUDGET_KEYS[0]}: depth above [ladder] max_depth = 8",
                              "d4|1e+30: budget above [ladder] max_flops = " + f"{10 * max(map(float, BUDGET_KEYS)):.3g}"]
    # Everything held back: the ladder stops and says which bound.
    stuck = next_step(fit, preset, {f"d2|{f}": "already materialized" for f in BUDGET_KEYS}, preset.flops_keys)
    assert stuck.cells == [] and stuck.stop.startswith("no credible law and a bound is reached:")
    assert "already materialized" in stuck.stop and "max_depth" in stuck.stop
    np.testing.assert_equal(len(read_ladder_cells(preset.root)), 0)  # deciding writes nothing


def test_ladder_bounds_are_validated(tmp_path):
    from nanochat_pipeline.presets import PresetError, load_preset

    path = write_tiny_preset(tmp_path, extra_sections="\n[ladder]\nmax_cells = -1\n")
    with pytest.raises(PresetError, match=r"\[ladder\] max_cells: -1 must be a positive integer"):
        load_preset(str(path))
    path = write_tiny_preset(tmp_path, name="other", extra_sections="\n[ladder]\nmax_cell = 3\n")
    with pytest.raises(PresetError, match=r"unknown key\(s\) \['max_cell'\]"):
        load_preset(str(path))


def test_scaling_preset_brackets_nanochats_optimum_with_room():
    """Each budget's tokens:params-10.5 depth (nanochat's optimum) has two preset depths on each side."""
    from nanochat_core.scaling.shape import depth_for_ratio
    from nanochat_pipeline.presets import load_preset

    preset = load_preset("scaling")
    train = {"vocab_size": 32768, "max_seq_len": 2048, "aspect_ratio": 64, "head_dim": 128, "window_pattern": "SSSL"}
    family = ModelFamily(**train)
    depths = [int(k[1:]) for k in preset.depth_keys]
    for flops in preset.flops_keys:
        optimum = depth_for_ratio(float(flops), 10.5, family)
        assert sum(d < optimum for d in depths) >= 2 and sum(d > optimum for d in depths) >= 2, (flops, optimum)


@pytest.mark.slow
def test_run_ladder_trains_the_proposed_cell_and_stops_at_its_bound(tmp_base_dir, tmp_path, one_torch_thread):
    """Real training: a one-cell grid (d2) has its minimum at its smallest depth; the ladder trains d1
    (the smaller model), refits, and stops at max_cells = 1 saying so."""
    from nanochat_pipeline.cli.ladder_run import run_ladder

    path = write_tiny_preset(tmp_path, depths=(2,), flops=("8e9",), extra_sections="\n[ladder]\nmax_cells = 1\n")
    _, preset = tiny_defs(path)
    said = []

    def grid_then_fit(defs):  # the main job's part the ladder needs: data, the grid's cells, the fit
        assets = ["raw_corpus", "shuffled_shards", "tokenizer"]
        ok = materialize(defs, instance, assets).success and all(
            materialize(defs, instance, ["base_model"], key).success for key in ("d2|8e9",))
        return 0 if ok and materialize(defs, instance, ["scaling_results"]).success else 1

    with dg.instance_for_test() as instance:
        assert run_ladder(preset, instance, grid_then_fit, said.append) == 0
        assert said[0].startswith("ladder round 1: d1|8e9 (budget 8e+09: minimum at the smallest depth tried (d2)")
        assert instance.get_materialized_partitions(dg.AssetKey("base_model")) == {"d1|8e9", "d2|8e9"}
        [run] = instance.get_run_records(dg.RunsFilter(tags={FINGERPRINT_TAG: next(iter(
            r.dagster_run.tags[FINGERPRINT_TAG] for r in instance.get_run_records() if FINGERPRINT_TAG in r.dagster_run.tags))}))
        assert run.dagster_run.tags["dagster/partition"] == "d1|8e9"
        assert said[-2].startswith("  refit: no credible law")  # the refit's verdict, then why it stops
        assert said[-1].startswith("ladder: stopped after 1 round(s), 1 cell(s) added in all: no credible law and a "
                                   "bound is reached")
        assert [c["depth"] for c in read_ladder_cells(preset.root)] == [1]
        assert read_fit(preset)["budgets"][0]["points"] == 2  # the refit saw the ladder's cell


def test_check_passes_on_the_demos_measured_grid(tmp_base_dir, tmp_path):
    """The demo preset's own results (measured by `python -m nanochat_pipeline run`, kept in
    tests/scaling_demo_results.csv), reported as its cells' metadata: a credible law."""
    from pathlib import Path

    from nanochat_core.scaling.results_csv import SCALING_COLUMNS, read_scaling_csv
    from nanochat_pipeline.presets import load_preset

    demo = load_preset("demo")
    rows = read_scaling_csv(Path(__file__).parent / "scaling_demo_results.csv")
    assert {(f"d{r['depth']}", r["flops_budget"]) for r in rows} == {
        (d, float(f)) for d in demo.depth_keys for f in demo.flops_keys}  # the file is the demo's whole grid
    path = write_tiny_preset(tmp_path, depths=[int(d[1:]) for d in demo.depth_keys], flops=demo.flops_keys)
    defs, preset = tiny_defs(path)
    with dg.instance_for_test() as instance:
        for row in rows:
            key = f"d{row['depth']}|{next(f for f in demo.flops_keys if float(f) == row['flops_budget'])}"
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key="base_model", partition=key,
                metadata={c: row[c] for c in SCALING_COLUMNS if row[c] is not None}))
        check = refit(defs, instance)
        assert check.passed, check.description
        fit = read_fit(preset)
        assert all(b["bracketed"] for b in fit["budgets"]) and len(fit["budgets"]) == 3


def test_known_cells_names_materialized_and_failed_for_the_same_code_and_data(ladder_preset):
    from nanochat_pipeline.ladder import fingerprint, known_cells

    defs, preset = ladder_preset()
    key = f"d3|{BUDGET_KEYS[0]}"
    with dg.instance_for_test() as instance:
        print_ = fingerprint(preset, instance, "1")
        # A real failed run of the cell (no tokenizer yet: base_model refuses to start), tagged as the ladder tags.
        result = dg.materialize(list(defs.assets), selection=["base_model"], instance=instance, resources=defs.resources,
                                partition_key=dg.MultiPartitionKey({"depth": "d3", "flops": BUDGET_KEYS[0]}),
                                raise_on_error=False, tags={FINGERPRINT_TAG: print_})
        assert not result.success
        assert known_cells(instance, print_) == {key: "failed for the same code and data"}
        assert known_cells(instance, "another-fingerprint") == {}  # other code or data: may be tried again
        report_cell(instance, f"d4|{BUDGET_KEYS[0]}")
        assert known_cells(instance, print_)[f"d4|{BUDGET_KEYS[0]}"] == "already materialized"

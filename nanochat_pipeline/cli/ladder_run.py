"""`python -m nanochat_pipeline run --ladder`: the main job, then rounds of the ladder's proposed cells
(ladder.py's steps, the same the scaling_ladder_sensor takes) and a refit, until the law is credible
or a bound is reached."""
from __future__ import annotations

import dagster as dg

from nanochat_pipeline.ladder import (BASE_MODEL, FINGERPRINT_TAG, fingerprint, fit_path, grid_flops, known_cells, next_step,
                                     read_fit, record_ladder_cells)
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.ladder_cells import read_ladder_cells


def run_ladder(preset: Preset, instance: dg.DagsterInstance, run_main_job, log) -> int:
    """run_main_job(defs) -> exit code (the main job), then rounds of: the fit's proposed cells
    (trained), scaling_results (refit), until the law is credible or a bound is reached, said on
    log(text). Returns the main job's failure code, 1 when a refit fails, else 0."""
    from nanochat_pipeline.definitions import build_definitions

    defs = build_definitions(preset)
    rc = run_main_job(defs)
    round_ = 0
    while rc == 0:
        fit = read_fit(preset)
        if fit is None:
            log(f"ladder: no fit at {fit_path(preset)}: scaling_results did not run")
            return 1
        graph = defs.resolve_asset_graph()
        partitions = graph.get(BASE_MODEL).partitions_def
        print_ = fingerprint(preset, instance, graph.get(BASE_MODEL).code_version)
        step = next_step(fit, preset, known_cells(instance, print_), grid_flops(partitions))
        if step.stop:
            added = len(read_ladder_cells(preset.root))
            log(f"ladder: stopped after {round_} round(s), {added} cell(s) added in all: {step.stop}")
            return 0
        round_ += 1
        record_ladder_cells(preset, step.cells)
        defs = build_definitions(preset)  # the grid now holds the new cells
        log(f"ladder round {round_}: " + "; ".join(f"{c['key']} ({c['why']})" for c in step.cells))
        for cell in step.cells:
            result = dg.materialize(list(defs.assets), selection=[BASE_MODEL], partition_key=cell["key"],
                                    instance=instance, resources=defs.resources, raise_on_error=False,
                                    tags={FINGERPRINT_TAG: print_, "nanochat/ladder": preset.name})
            log(f"  base_model[{cell['key']}]: {'done' if result.success else 'FAILED (not retried for this code and data)'}")
        result = dg.materialize(list(defs.assets), selection=["scaling_results"], instance=instance,
                                resources=defs.resources, raise_on_error=False)
        if not result.success:
            log("  scaling_results: FAILED")
            return 1
        refit = read_fit(preset) or {}
        log("  refit: " + " | ".join((refit.get("verdict") or "no verdict").splitlines()))
    return rc

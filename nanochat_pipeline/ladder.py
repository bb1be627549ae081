"""The scaling ladder: grow the grid until the law is credible or a bound is reached (off by default).

Each step reads the latest fit (fit.json beside the results CSV, written by scaling_results), takes
its proposed cells (the recommendation's cells_to_add: the next depth on an unbracketed budget's
open side, or a next budget around its predicted optimum) and keeps those within the preset's
[ladder] bounds that were never materialized, are not in flight and did not fail for the same code
and data (the fingerprint below, also the run key, which Dagster never launches twice).

Two drivers: `scaling_ladder_sensor` (requests the cells already in the loaded grid and adds the
others to the ladder's cells file, which makes them partitions when the code location reloads),
and `python -m nanochat_pipeline run --ladder` (cli/ladder_run.py: trains, refits and grows in a loop).
The sensor is in sensors.py; this module holds the step logic both share.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.ladder_cells import add_ladder_cells, read_ladder_cells
from nanochat_pipeline.presets.paths import results_csv

FINGERPRINT_TAG = "nanochat/ladder_fingerprint"
FIT_FILE = "fit.json"  # nanochat_core.scaling.analysis.FIT_FILE (not imported: it pulls in torch at load)
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]
BASE_MODEL = dg.AssetKey("base_model")


@dataclass
class LadderStep:
    stop: str | None                                   # why the ladder stops now, or None
    cells: list[dict] = field(default_factory=list)    # to request: {"depth", "flops" (grid key), "why", "key"}
    held_back: list[str] = field(default_factory=list)  # proposals not requested, each with the reason


def fit_path(preset: Preset) -> Path:
    return results_csv(preset).parent / FIT_FILE


def read_fit(preset: Preset) -> dict | None:
    path = fit_path(preset)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def fingerprint(preset: Preset, instance: dg.DagsterInstance, code_version: str | None) -> str:
    """Same code and data: base_model's code version, the tokenizer's data version, the [train] flags."""
    event = instance.get_latest_materialization_event(dg.AssetKey("tokenizer"))
    materialization = event.asset_materialization if event else None
    tokenizer = (materialization.tags or {}).get("dagster/data_version") if materialization else None
    text = json.dumps([code_version, tokenizer, preset.train], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def known_cells(instance: dg.DagsterInstance, print_: str) -> dict[str, str]:
    """Cell key -> why it is not to be requested: materialized, in flight, or failed for this fingerprint."""
    known = {k: "already materialized" for k in instance.get_materialized_partitions(BASE_MODEL)}
    for status, why in ((IN_FLIGHT, "in flight"), ([dg.DagsterRunStatus.FAILURE], "failed for the same code and data")):
        tags = {FINGERPRINT_TAG: print_} if why.startswith("failed") else {}
        for record in instance.get_run_records(dg.RunsFilter(statuses=status, tags=tags)):
            key = record.dagster_run.tags.get("dagster/partition")
            if key and key not in known and BASE_MODEL in (record.dagster_run.asset_selection or {BASE_MODEL}):
                known[key] = why
    return known


def _flops_key(budget: float, grid_flops: list[str]) -> str:
    """The grid's own spelling of a budget ("2e10"), or a new key with 3 significant digits."""
    return next((k for k in grid_flops if float(k) == budget), f"{budget:.3g}")


def next_step(fit: dict, preset: Preset, known: dict[str, str], grid_flops: list[str]) -> LadderStep:
    """The cells to train next, or why the ladder stops. Stop rules, in order: a credible law from
    target_budgets bracketed budgets (and, with target_ci_width, an N_opt exponent interval at most
    that wide); otherwise the proposals (cells_to_add; past a credible law, cells_to_narrow) within
    the bounds, and a stop naming the bound when none is left."""
    bounds = preset.ladder
    bracketed = sum(b["bracketed"] for b in fit["budgets"])
    goal = bounds.get("target_ci_width")
    rec = fit["recommendation"]
    proposals = rec["cells_to_add"]
    if fit["credible"] and bracketed >= bounds["target_budgets"]:
        credible = f"credible law from {bracketed} bracketed budgets (target {bounds['target_budgets']})"
        if goal is None:
            return LadderStep(stop=credible)
        width = rec.get("n_opt_exponent_ci_width")
        if width is not None and width <= goal:
            return LadderStep(stop=f"{credible}, N_opt exponent interval {width:.2f} wide (target_ci_width {goal:g})")
        candidates = rec.get("narrowing_candidates") or ([rec["cells_to_narrow"]] if rec.get("cells_to_narrow") else [])
        if not candidates:
            return LadderStep(stop=f"{credible}, but the N_opt exponent interval is "
                                   f"{'not known' if width is None else f'{width:.2f} wide'} (target_ci_width "
                                   f"{goal:g}) and no cell is proposed to narrow it: {rec.get('narrowing_note')}")
        held_back: list[str] = []
        for cells in candidates:  # narrowest expected interval first: the first one the bounds allow
            step = _within_bounds(cells, fit, preset, known, grid_flops)
            if step.cells:
                step.held_back = held_back + step.held_back
                return step
            held_back += [h for h in step.held_back if h not in held_back]
        return LadderStep(stop="credible law, N_opt exponent interval wider than target_ci_width and a bound is "
                               "reached: " + "; ".join(held_back), held_back=held_back)
    return _within_bounds(proposals, fit, preset, known, grid_flops)


def _within_bounds(proposals: list[dict], fit: dict, preset: Preset, known: dict[str, str],
                   grid_flops: list[str]) -> LadderStep:
    """The proposals the [ladder] bounds allow (the rest held back, each with its reason); a stop
    naming the bounds when none is allowed."""
    bounds = preset.ladder
    room = bounds["max_cells"] - len(read_ladder_cells(preset.root))
    step = LadderStep(stop=None)
    for cell in proposals:
        key = f"d{cell['depth']}|{_flops_key(cell['flops_budget'], grid_flops)}"
        if cell["depth"] > bounds["max_depth"]:
            step.held_back.append(f"{key}: depth above [ladder] max_depth = {bounds['max_depth']}")
        elif cell["flops_budget"] > bounds["max_flops"]:
            step.held_back.append(f"{key}: budget above [ladder] max_flops = {bounds['max_flops']:.3g}")
        elif key in known:
            step.held_back.append(f"{key}: {known[key]}")
        elif room <= 0:
            step.held_back.append(f"{key}: [ladder] max_cells = {bounds['max_cells']} cells added already")
        else:
            room -= 1
            step.cells.append({"depth": cell["depth"], "flops": key.split("|")[1], "why": cell["why"], "key": key})
    if not step.cells:
        why = "; ".join(step.held_back) or "the fit proposes no cell (" + "; ".join(fit["problems"]) + ")"
        state = "no credible law" if not fit["credible"] else "fewer bracketed budgets than [ladder] target_budgets"
        step.stop = f"{state} and a bound is reached: {why}"
    return step


def record_ladder_cells(preset: Preset, cells: list[dict]) -> None:
    """Cells outside the preset's own grid go into the ladder's file (and so into the next grid)."""
    preset_grid = {f"{d}|{f}" for d in preset.depth_keys for f in preset.flops_keys}
    add_ladder_cells(preset.root, [{k: c[k] for k in ("depth", "flops", "why")} for c in cells
                                   if c["key"] not in preset_grid])


def grid_flops(partitions: dg.MultiPartitionsDefinition) -> list[str]:
    return next(d.partitions_def.get_partition_keys() for d in partitions.partitions_defs if d.name == "flops")



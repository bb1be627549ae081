"""The depth x FLOP-budget grid as a two-dimensional partitions definition (keys like `d4|1e13`).

The grid is the preset's depths and budgets plus the ones the scaling ladder added (ladder_cells.py:
a file under the preset's root), so a cell the ladder proposes is a partition after the next load.

Partitions are a product, declared cells are not: a depth the ladder adds for one budget is a
partition of every budget, but only the preset's grid and the ladder's own cells are declared
(declared_cells). The schedule, the sensors and the main job request declared cells only; the other
partitions stay one explicit click away in the UI. (A product keeps the UI's depth x budget grid
view and the `d4|1e13` keys every asset reads; dynamic partitions would need an instance to load.)
"""
from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from nanochat_pipeline.presets.ladder_cells import read_ladder_cells
from nanochat_pipeline.presets import Preset


def grid_axes(preset: Preset) -> tuple[list[str], list[str]]:
    """(depth keys, flops keys): the preset's, then the ladder's, each in increasing order."""
    added = read_ladder_cells(preset.root)
    depths = sorted({int(k[1:]) for k in preset.depth_keys} | {c["depth"] for c in added})
    flops = list(preset.flops_keys) + sorted({c["flops"] for c in added} - set(preset.flops_keys), key=float)
    return [f"d{d}" for d in depths], flops


def declared_cells(preset: Preset) -> list[str]:
    """The cells the preset asks for: its depths x its budgets, then the ladder's cells (each for its
    own budget only), in that order; partition keys `d{depth}|{flops}`."""
    cells = [f"{d}|{f}" for f in preset.flops_keys for d in preset.depth_keys]
    seen = set(cells)
    for c in read_ladder_cells(preset.root):
        key = f"d{c['depth']}|{c['flops']}"
        if key not in seen:
            seen.add(key)
            cells.append(key)
    return cells


def declared_cells_note(preset: Preset) -> str:
    """One sentence for descriptions and metadata: how many partitions are declared, and which of
    the product are not."""
    declared = set(declared_cells(preset))
    depth_keys, flops_keys = grid_axes(preset)
    product = [f"{d}|{f}" for f in flops_keys for d in depth_keys]
    others = [k for k in product if k not in declared]
    note = f"{len(declared)} of the {len(product)} depth x budget partitions are declared cells"
    if others:
        note += (f"; not declared (never requested by the schedule, the sensors or the main job): "
                 f"{', '.join(others)}")
    return note


def grid_partitions(preset: Preset) -> dg.MultiPartitionsDefinition:
    depth_keys, flops_keys = grid_axes(preset)
    return dg.MultiPartitionsDefinition({
        "depth": dg.StaticPartitionsDefinition(depth_keys),
        "flops": dg.StaticPartitionsDefinition(flops_keys),
    })


@dataclass(frozen=True)
class Cell:
    depth: int
    flops_key: str        # as written in the preset: names the model tag

    @property
    def target_flops(self) -> float:
        return float(self.flops_key)

    @property
    def model_tag(self) -> str:
        return f"d{self.depth}_{self.flops_key}"


def cell_from_key(partitions: dg.MultiPartitionsDefinition, key: str | dg.MultiPartitionKey) -> Cell:
    """The cell of a partition key, or a Failure naming the grid when the key is not in it."""
    text = str(key)
    valid = partitions.get_partition_keys()
    if text not in valid:
        raise dg.Failure(f"unknown partition key {text!r}: this preset's grid is {', '.join(valid)}")
    dims = partitions.get_partition_key_from_str(text).keys_by_dimension
    return Cell(depth=int(dims["depth"][1:]), flops_key=dims["flops"])

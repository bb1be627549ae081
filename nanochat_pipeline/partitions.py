"""The depth x FLOP-budget grid as a two-dimensional partitions definition (keys like `d4|1e13`).

The grid is the preset's depths and budgets plus the ones the scaling ladder added (ladder_cells.py:
a file under the preset's root), so a cell the ladder proposes is a partition after the next load.
"""
from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from nanochat_pipeline.ladder_cells import read_ladder_cells
from nanochat_pipeline.presets import Preset


def grid_axes(preset: Preset) -> tuple[list[str], list[str]]:
    """(depth keys, flops keys): the preset's, then the ladder's, each in increasing order."""
    added = read_ladder_cells(preset.root)
    depths = sorted({int(k[1:]) for k in preset.depth_keys} | {c["depth"] for c in added})
    flops = list(preset.flops_keys) + sorted({c["flops"] for c in added} - set(preset.flops_keys), key=float)
    return [f"d{d}" for d in depths], flops


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

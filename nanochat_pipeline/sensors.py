"""The automation sensor: evaluates the assets' automation conditions (eager on new upstream data
or a code version change). Off by default: turn it on in the UI (Automation tab) when wanted.

base_model's condition is limited to the declared cells (partitions.declared_cells): the grid's
partitions are a product, and eager() on a new tokenizer would otherwise train every depth at every
budget, including a depth the ladder added for one budget only. That limit is Python code (Dagster's
arbitrary-Python conditions), so the sensor evaluates in the code server (use_user_code_server).
"""
from __future__ import annotations

import warnings

import dagster as dg


class InDeclaredCells(dg.AutomationCondition):
    """True for the partitions among `cells` (the declared cells), false for every other partition."""

    def __init__(self, cells: list[str]):
        self.cells = frozenset(cells)

    @property
    def requires_cursor(self) -> bool:
        return False  # a pure function of the candidate partitions

    @property
    def description(self) -> str:
        return f"one of the {len(self.cells)} declared cells (the preset's grid and the ladder's cells)"

    @property
    def name(self) -> str:
        return "in_declared_cells"

    def evaluate(self, context):
        partitions = context.partitions_def
        keys = {k for k in self.cells if partitions is not None and partitions.has_partition_key(k)}
        subset = context.asset_graph_view.compute_intersection_with_partition_keys(keys, context.candidate_subset)
        return dg.AutomationResult(context, true_subset=subset)


def declared_only(condition: dg.AutomationCondition, cells: list[str]) -> dg.AutomationCondition:
    """`condition`, for the declared cells only."""
    return (condition & InDeclaredCells(cells)).with_label("eager, declared cells only")


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    with warnings.catch_warnings():  # use_user_code_server is beta in Dagster 1.13; said here, not at every load
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.AutomationConditionSensorDefinition(
            "nanochat_automation_sensor", target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.STOPPED, use_user_code_server=True)

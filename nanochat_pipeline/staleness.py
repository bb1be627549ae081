"""Which grid cells (and assets) need a run: never materialized, or unsynced with their upstream."""
from __future__ import annotations

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime


def stale_resolver(asset_graph, instance: dg.DagsterInstance) -> CachingStaleStatusResolver:
    """The resolver behind the UI's "Unsynced" labels (dagster has no public API for it; this is
    how dagster's own data-version test helper builds one)."""
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def needs_run(resolver: CachingStaleStatusResolver, key: dg.AssetKey, partition: str | None = None) -> bool:
    """MISSING (never materialized) or STALE (an upstream's data or a code version changed)."""
    return resolver.get_status(key, partition) != StaleStatus.FRESH


def cells_needing_run(asset_graph, instance: dg.DagsterInstance, partitions) -> list[str]:
    resolver = stale_resolver(asset_graph, instance)
    key = dg.AssetKey("base_model")
    return [p for p in partitions.get_partition_keys() if needs_run(resolver, key, p)]

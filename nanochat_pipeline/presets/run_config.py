"""The settings an asset runs with: its preset table overlaid with the run's Config (launchpad or
`--config-json`), where a Config field left at None keeps the preset's value.

Every asset with user-changeable settings takes a dg.Config whose fields default to None; Dagster
refuses an unknown or misspelt field by name before the run starts. The effective settings go into
the materialization's metadata (SETTINGS_KEY), so the UI shows what each materialization ran with.
"""
from __future__ import annotations

import dagster as dg

SETTINGS_KEY = "settings"


def effective_settings(preset_table: dict, config: dg.Config | None) -> dict:
    """The preset's table with every field the run config set (not None) put over it."""
    overrides = {} if config is None else {k: v for k, v in config.model_dump().items() if v is not None}
    return dict(preset_table) | overrides


def settings_metadata(settings: dict) -> dict:
    """{SETTINGS_KEY: the settings as JSON metadata}: merge into a MaterializeResult's metadata."""
    return {SETTINGS_KEY: dg.MetadataValue.json({k: v for k, v in sorted(settings.items())})}

"""Whether a preset's run may reach the network ([evaluation] offline: true, false or "auto", probed
once per process), and the environment of the core commands and children an asset runs, which
follows from it (HF_HUB_OFFLINE when the Hub may not be reached)."""
from __future__ import annotations

import dagster as dg

from nanochat_pipeline.presets import Preset


OFFLINE_VALUES = {"true": True, "false": False, "auto": "auto"}


_probed: dict[tuple[str, str], dict] = {}  # (bundle url, hub url) -> probe result, once per process


def offline_setting(preset: Preset, override: str | None = None):
    """True, False or "auto": a run's config (a string) over the preset's [evaluation] offline."""
    if override is not None:
        if override not in OFFLINE_VALUES:
            raise dg.Failure(f"offline: {override!r} is none of {', '.join(OFFLINE_VALUES)}")
        return OFFLINE_VALUES[override]
    return preset.evaluation.get("offline", "auto")


def network_reasons(preset: Preset, override: str | None = None) -> dict[str, str | None]:
    """{"bundle": None | why not, "hub": None | why not}: None = may fetch from there."""
    setting = offline_setting(preset, override)
    if setting is True:
        why = f"no network: preset {preset.name} says offline = true"
        return {"bundle": why, "hub": why}
    if setting is False:
        return {"bundle": None, "hub": None}
    from nanochat_core.evaluation.core_bundle import bundle_url
    from nanochat_core.common.reachability import PROBE_BUDGET_S, hub_url, probe

    urls = (bundle_url(), hub_url())
    if urls not in _probed:
        found = probe(list(urls), PROBE_BUDGET_S)
        _probed[urls] = {name: None if found[url].answered else f"no network: {found[url].describe()}"
                         for name, url in zip(("bundle", "hub"), urls)}
    return _probed[urls]


def child_env(preset: Preset) -> dict:
    """The environment of the core commands an asset runs: the preset's root, and HF_HUB_OFFLINE
    when the Hub may not be reached (offline, or "auto" and it did not answer)."""
    return preset_env(preset, hub_offline=network_reasons(preset)["hub"] is not None)


def declared_env(preset: Preset) -> dict:
    """The same environment as the preset alone decides it, without probing this machine's network: for
    manifests rendered here and run elsewhere (only offline = true makes their children offline)."""
    return preset_env(preset, hub_offline=offline_setting(preset) is True)


def preset_env(preset: Preset, hub_offline: bool) -> dict:
    return {"NANOCHAT_BASE_DIR": str(preset.root)} | ({"HF_HUB_OFFLINE": "1"} if hub_offline else {})

"""eval_bundle and task_data: the evaluation inputs, found on disk or fetched once, shown with where they came from.

Both materialize even when their data cannot be had (no network, offline preset): the metadata
then says what is missing and why, and eval_report says plainly what it could not evaluate. A
failure here would only block the rest of the graph without making anything more evaluable.

Whether to reach for the network (presets/network.py) is `[evaluation] offline`: true never does, false always does,
"auto" (the default) asks once per process (reachability.probe: the bundle's host and the Hub,
5 s at most in all) and fetches from whichever answered. What is on disk comes first either way:
NANOCHAT_EVAL_BUNDLE_DIR (an unpacked bundle, used where it lies), then the preset's own bundle
folder; the task-data folder's release files and cached Hub downloads.
"""

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.evaluation.core_bundle import BUNDLE_DIR_ENV
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.network import network_reasons, offline_setting
from nanochat_pipeline.presets.paths import task_data_dir

@contextlib.contextmanager
def hub_offline(offline: bool):
    """HF_HUB_OFFLINE=1 for the block when the Hub may not be reached (the task readers honour it)."""
    saved = os.environ.get("HF_HUB_OFFLINE")
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if offline:
            if saved is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = saved


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def given_bundle_dir(override: str | None = None) -> Path | None:
    """The unpacked bundle a user points at (run config, else NANOCHAT_EVAL_BUNDLE_DIR), or None."""
    given = override or os.environ.get(BUNDLE_DIR_ENV)
    return Path(given).expanduser().resolve() if given else None


def bundle_code_version() -> str:
    """eval_bundle's code version: pointing NANOCHAT_EVAL_BUNDLE_DIR elsewhere (or unsetting it)
    makes the asset unsynced, so the main job looks again; its data version (the content hash)
    then decides whether eval_report is unsynced."""
    given = given_bundle_dir()
    return "2" + (f"+dir:{hashlib.sha256(str(given).encode()).hexdigest()[:12]}" if given else "")


class EvalBundleConfig(dg.Config):
    """None = the preset's value. offline: "auto" | "true" | "false"; bundle_dir: an unpacked bundle
    (core.yaml, eval_meta_data.csv, eval_data/) to use where it lies, else NANOCHAT_EVAL_BUNDLE_DIR,
    else the preset's eval_bundle folder (downloaded into when missing and the network allows)."""

    offline: Optional[str] = None
    bundle_dir: Optional[str] = None


class TaskDataConfig(dg.Config):
    """None = the preset's value. offline: "auto" | "true" | "false"; task_data: the folder of release
    files and cached Hub downloads."""

    offline: Optional[str] = None
    task_data: Optional[str] = None


def bundle_found(path: Path, origin: str, settings_used: dict) -> dg.MaterializeResult:
    """The metadata of a bundle on disk: its tasks, the missing ones named, its content hash."""
    from nanochat_core.evaluation.core_bundle import bundle_contents, bundle_provenance

    try:
        contents = bundle_contents(path)
    except (OSError, ValueError) as e:
        raise dg.Failure(f"eval bundle {path} ({origin}) cannot be read: {e}") from e
    provenance = bundle_provenance(path) or {}
    missing = contents["missing"]
    metadata = {"available": True, "path": dg.MetadataValue.path(str(path)), "origin": origin,
                "tasks": contents["tasks"], "tasks_present": len(contents["present"]),
                "partial": contents["partial"],
                "missing_tasks": ", ".join(f"{label} ({file})" for label, file in missing.items()) or "none",
                "content_sha256": contents["sha256"], "settings": dg.MetadataValue.json(settings_used)}
    if provenance:
        metadata |= {"url": provenance.get("url", ""), "zip_sha256": provenance.get("sha256", "")}
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(contents["sha256"]))


def build_eval_input_assets(preset: Preset) -> list:
    own_bundle = settings.eval_bundle_dir(preset.root)

    @dg.asset(group_name="evaluation", code_version=bundle_code_version(),
              description="The CORE eval bundle (core.yaml + its tasks): NANOCHAT_EVAL_BUNDLE_DIR, else the preset's "
                          "copy, else downloaded once when the network allows; data version = its content.")
    def eval_bundle(context: dg.AssetExecutionContext, config: EvalBundleConfig) -> dg.MaterializeResult:
        from nanochat_core.evaluation.core_bundle import CONFIG_NAME, bundle_url, ensure_bundle

        given = given_bundle_dir(config.bundle_dir)
        used = {"offline": offline_setting(preset, config.offline), "bundle_dir": str(given or own_bundle)}
        if given is not None:
            if not (given / CONFIG_NAME).is_file():
                raise dg.Failure(f"eval bundle {given} (from {'run config bundle_dir' if config.bundle_dir else BUNDLE_DIR_ENV}) "
                                 f"has no {CONFIG_NAME}: point it at an unpacked bundle (core.yaml, eval_meta_data.csv, eval_data/)")
            context.log.info(f"eval bundle: {given}, used where it lies (nothing fetched)")
            return bundle_found(given, "given folder (nothing fetched)", used)
        if (own_bundle / CONFIG_NAME).is_file():
            context.log.info(f"eval bundle: {own_bundle} is on disk (nothing fetched)")
            return bundle_found(own_bundle, "on disk (nothing fetched)", used)
        reason = network_reasons(preset, config.offline)["bundle"]
        if reason is None:
            try:
                path = ensure_bundle(own_bundle)
            except (OSError, RuntimeError) as e:
                reason = f"download failed: {type(e).__name__}: {e}"
            else:
                return bundle_found(path, f"downloaded from {bundle_url()}", used)
        reason = f"{reason}; nothing fetched (set {BUNDLE_DIR_ENV} to an unpacked bundle on disk)"
        context.log.warning(f"eval bundle not available: {reason}")
        return dg.MaterializeResult(metadata={"available": False, "reason": reason, "url": bundle_url(),
                                              "settings": dg.MetadataValue.json(used)},
                                    data_version=dg.DataVersion("missing"))

    @dg.asset(group_name="evaluation", code_version="2",
              description="Chat task data (SmolTalk, MMLU, GSM8K, ARC, HumanEval) for chat_sft and chat_eval: "
                          "local release files or the Hugging Face Hub, cached under task_data/.")
    def task_data(context: dg.AssetExecutionContext, config: TaskDataConfig) -> dg.MaterializeResult:
        from nanochat_core.tasks.inventory import inventory

        root = task_data_dir(preset, config.task_data)
        reason = network_reasons(preset, config.offline)["hub"]
        with hub_offline(reason is not None):
            found = inventory(root, log=context.log.info)
        if reason:
            on_disk = sum(i["status"] == "ok" for i in found.values())
            context.log.warning(f"task data: nothing fetched ({reason}); {on_disk} of {len(found)} sources on disk "
                                f"under {root}")
        rows = [f"| {name} | {i['used_by']} | " + (f"{i['rows']:,} rows, {i['origin']}" if i["status"] == "ok"
                                                    else f"missing: {i['reason']}") + " |"
                for name, i in found.items()]
        table = "| source | read by | status |\n|---|---|---|\n" + "\n".join(rows)
        stamp = {name: [(f, Path(f).stat().st_size) for f in i["files"]] if i["status"] == "ok" else None
                 for name, i in found.items()}
        available = sum(i["status"] == "ok" for i in found.values())
        used = {"offline": offline_setting(preset, config.offline), "task_data": str(root)}
        metadata = {"sources": dg.MetadataValue.md(table), "available": available, "missing": len(found) - available,
                    "path": dg.MetadataValue.path(str(root)), "settings": dg.MetadataValue.json(used)}
        if reason:
            metadata["network"] = reason
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(_digest(stamp)))

    return [eval_bundle, task_data]

"""eval_bundle and task_data: the evaluation inputs, fetched once and shown with where they came from.

Both materialize even when their data cannot be had (offline preset, no network): the metadata
then says what is missing and why, and eval_report says plainly what it could not evaluate. A
failure here would only block the rest of the graph without making anything more evaluable.
"""

import contextlib
import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from nanochat_core.common import settings
from nanochat_pipeline.presets import Preset


def task_data_dir(preset: Preset) -> Path:
    configured = preset.evaluation.get("task_data")
    return Path(configured).expanduser() if configured else settings.task_data_dir(preset.root)


def is_offline(preset: Preset) -> bool:
    return bool(preset.evaluation.get("offline", False))


def child_env(preset: Preset) -> dict:
    """The environment of the core commands an asset runs: the preset's root, and offline if it says so."""
    return {"NANOCHAT_BASE_DIR": str(preset.root)} | ({"HF_HUB_OFFLINE": "1"} if is_offline(preset) else {})


def device_type(preset: Preset) -> str:
    return str(preset.train.get("device_type", "auto"))


@contextlib.contextmanager
def hub_offline(offline: bool):
    """HF_HUB_OFFLINE=1 for the block when the preset is offline (the task readers honour it)."""
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


def build_eval_input_assets(preset: Preset) -> list:
    bundle_dir = settings.eval_bundle_dir(preset.root)

    @dg.asset(group_name="evaluation", code_version="1",
              description="The CORE eval bundle (core.yaml + 22 tasks), downloaded once; where it came from.")
    def eval_bundle(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from nanochat_core.evaluation.core_bundle import bundle_provenance, bundle_url, ensure_bundle

        if is_offline(preset):
            reason = f"preset {preset.name} is offline: the bundle is not downloaded"
            if not (bundle_dir / "core.yaml").is_file():
                context.log.warning(reason)
                return dg.MaterializeResult(metadata={"available": False, "reason": reason},
                                            data_version=dg.DataVersion("missing"))
        try:
            path = ensure_bundle(bundle_dir)
        except (OSError, RuntimeError) as e:
            reason = f"{type(e).__name__}: {e}"
            context.log.warning(f"eval bundle unavailable: {reason}")
            return dg.MaterializeResult(metadata={"available": False, "reason": reason, "url": bundle_url()},
                                        data_version=dg.DataVersion("missing"))
        provenance = bundle_provenance(path) or {}
        tasks = sorted(str(p.relative_to(path)) for p in (path / "eval_data").rglob("*.jsonl"))
        metadata = {"available": True, "path": dg.MetadataValue.path(str(path)), "task_files": len(tasks),
                    "url": provenance.get("url", "(not downloaded by us)"), "sha256": provenance.get("sha256", "")}
        return dg.MaterializeResult(metadata=metadata,
                                    data_version=dg.DataVersion(provenance.get("sha256") or _digest(tasks)))

    @dg.asset(group_name="evaluation", code_version="1",
              description="Chat task data (SmolTalk, MMLU, GSM8K, ARC, HumanEval) for chat_sft and chat_eval: "
                          "local release files or the Hugging Face Hub, cached under task_data/.")
    def task_data(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from nanochat_core.tasks.inventory import inventory

        root = task_data_dir(preset)
        with hub_offline(is_offline(preset)):
            found = inventory(root, log=context.log.info)
        rows = [f"| {name} | {i['used_by']} | " + (f"{i['rows']:,} rows, {i['origin']}" if i["status"] == "ok"
                                                    else f"missing: {i['reason']}") + " |"
                for name, i in found.items()]
        table = "| source | read by | status |\n|---|---|---|\n" + "\n".join(rows)
        stamp = {name: [(f, Path(f).stat().st_size) for f in i["files"]] if i["status"] == "ok" else None
                 for name, i in found.items()}
        available = sum(i["status"] == "ok" for i in found.values())
        return dg.MaterializeResult(
            metadata={"sources": dg.MetadataValue.md(table), "available": available, "missing": len(found) - available,
                      "path": dg.MetadataValue.path(str(root))},
            data_version=dg.DataVersion(_digest(stamp)))

    return [eval_bundle, task_data]

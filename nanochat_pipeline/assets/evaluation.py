"""eval_report[depth|flops]: CORE of the base model, chat evaluation of the SFT (and RL) model, the report card.

Each evaluation runs the core's own command in a child process (what a user types by hand, with
NANOCHAT_BASE_DIR pointing at the preset's root), then the report card is written from what they
recorded. The bundle is the one eval_bundle found (its latest materialization says where, or why
there is none); the chat tasks are nanochat's five plus Arithmetic, the generated test split that
needs no data, so even with no network the SFT and RL models get a number. What could not be
evaluated (no bundle, no task data, no network) is said in the card, not failed on.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.common.file_hash import files_sha256
from nanochat_pipeline.checks import SFT_MODEL_CHECKS
from nanochat_pipeline.partitions import cell_from_key
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.network import child_env
from nanochat_pipeline.presets.paths import device_type, task_data_dir
from nanochat_pipeline.staleness import latest_metadata, require_checks_passed, require_files

def run_core_command(context, module: str, args: list[str], env: dict) -> None:
    """Run `python -m <module> <args>`, its output into the step's log; a failure fails the step."""
    command = [sys.executable, "-m", module, *args]
    context.log.info("running " + " ".join(command))
    proc = subprocess.run(command, env=os.environ | env, capture_output=True, text=True)
    for line in (proc.stdout + proc.stderr).splitlines()[-60:]:
        context.log.info(line)
    if proc.returncode != 0:
        raise dg.Failure(f"{module} exited with {proc.returncode}; its last lines are in this step's log")


DEFAULT_CHAT_TASKS = "ARC-Easy|ARC-Challenge|MMLU|GSM8K|HumanEval|Arithmetic"


class EvalReportConfig(dg.Config):
    """None = the preset's [evaluation] value. core_max_per_task: CORE examples per task (-1 = all);
    chat_tasks: chat_eval's `-a` (pipe-separated; default nanochat's five and Arithmetic);
    chat_max_problems: problems per chat task (unset = all); chat_max_new_tokens: tokens generated per
    answer (unset = chat_eval's 512)."""

    core_max_per_task: Optional[int] = None
    chat_tasks: Optional[str] = None
    chat_max_problems: Optional[int] = None
    chat_max_new_tokens: Optional[int] = None


def effective_settings(preset: Preset, config: EvalReportConfig | None = None) -> dict:
    e = preset.evaluation
    chosen = {k: v for k, v in (config.model_dump() if config else {}).items() if v is not None}
    return {"core_max_per_task": int(chosen.get("core_max_per_task", e.get("core_max_per_task", -1))),
            "chat_tasks": str(chosen.get("chat_tasks", e.get("chat_tasks", DEFAULT_CHAT_TASKS))),
            "chat_max_problems": chosen.get("chat_max_problems", e.get("chat_max_problems")),
            "chat_max_new_tokens": chosen.get("chat_max_new_tokens", e.get("chat_max_new_tokens"))}


def evaluation_commands(preset: Preset, tag: str, bundle: Path | None,
                        used: dict | None = None) -> list[tuple[str, list[str]]]:
    used = used or effective_settings(preset)
    commands = []
    if bundle is not None:
        commands.append(("nanochat_core.cli.base_eval", [
            "--eval", "core", "--model-tag", tag, "--max-per-task", str(used["core_max_per_task"]),
            "--bundle-dir", str(bundle), "--device-type", device_type(preset)]))
    # the SFT model, and the RL model too when the cell has one (the report card's RL column)
    sources = ["sft"] + (["rl"] if (settings.chatrl_checkpoints_dir(preset.root) / tag).is_dir() else [])
    for source in sources:
        chat = ["-i", source, "-g", tag, "--task-data", str(task_data_dir(preset)), "--device-type", device_type(preset),
                "-a", used["chat_tasks"]]
        if used["chat_max_problems"]:
            chat += ["-x", str(used["chat_max_problems"])]
        if used["chat_max_new_tokens"]:
            chat += ["-m", str(used["chat_max_new_tokens"])]
        commands.append(("nanochat_core.cli.chat_eval", chat))
    return commands


def _meta_value(metadata: dict, key: str):
    value = metadata.get(key)
    return getattr(value, "value", value)


def evaluation_inputs(instance: dg.DagsterInstance) -> tuple[Path | None, dict]:
    """(the bundle folder eval_bundle found, or None; what the card says about each input) from the
    inputs' latest materializations: where the bundle is and whether it is partial, or why it and
    the task data could not be had (no network and what the probe saw, offline, nothing on disk)."""
    bundle_meta, tasks_meta = latest_metadata(instance, "eval_bundle", None), latest_metadata(instance, "task_data", None)
    bundle, notes = None, {}
    if _meta_value(bundle_meta, "available") and (found := _meta_value(bundle_meta, "path")):
        bundle = Path(found)
        notes["eval_bundle"] = (f"{bundle} ({_meta_value(bundle_meta, 'origin')}); "
                                f"{_meta_value(bundle_meta, 'tasks_present')} of {_meta_value(bundle_meta, 'tasks')} "
                                f"tasks present" + (f", missing: {_meta_value(bundle_meta, 'missing_tasks')}"
                                                    if _meta_value(bundle_meta, "partial") else ""))
    else:
        notes["eval_bundle"] = _meta_value(bundle_meta, "reason") or "eval_bundle was never materialized"
    if _meta_value(tasks_meta, "network"):
        notes["task_data"] = (f"{_meta_value(tasks_meta, 'network')}; only what is on disk: "
                              f"{_meta_value(tasks_meta, 'available')} of "
                              f"{(_meta_value(tasks_meta, 'available') or 0) + (_meta_value(tasks_meta, 'missing') or 0)}"
                              " sources")
    return bundle, notes


def report_metadata(report: dict, markdown: str, md_path) -> dict:
    metadata = {"report": dg.MetadataValue.md(markdown), "path": dg.MetadataValue.path(str(md_path)),
                "not_evaluated": len(report["not_evaluated"])}
    for label, values in report["summary"].items():
        for column, value in values.items():
            if isinstance(value, (int, float)):
                metadata[f"{label} ({column})"] = float(value)
    return metadata


def build_evaluation_assets(preset: Preset, partitions: dg.MultiPartitionsDefinition, sft_model_asset,
                            eval_bundle_asset, task_data_asset, rl_model_asset) -> list:
    root = preset.root

    @dg.asset(group_name="evaluation", code_version="2", partitions_def=partitions,
              deps=[sft_model_asset, rl_model_asset, eval_bundle_asset, task_data_asset],
              description="CORE (base model) + chat evaluation (SFT model, and RL model when the cell has one) "
                          "and the report card of one cell.")
    def eval_report(context: dg.AssetExecutionContext, config: EvalReportConfig) -> dg.MaterializeResult:
        from nanochat_core.report.card import write_report

        cell = cell_from_key(partitions, context.partition_key)
        tag = cell.model_tag
        require_files("eval_report", [settings.chatsft_checkpoints_dir(root) / tag], "sft_model")
        require_checks_passed("eval_report", context.instance, SFT_MODEL_CHECKS, context.partition_key)
        bundle, notes = evaluation_inputs(context.instance)
        if bundle is None:
            context.log.warning(f"no eval bundle ({notes['eval_bundle']}): CORE is not evaluated")
        used = effective_settings(preset, config)
        for module, args in evaluation_commands(preset, tag, bundle, used):
            run_core_command(context, module, args, child_env(preset))
        md_path, json_path = write_report(tag, root, inputs=notes)
        markdown, report = md_path.read_text(encoding="utf-8"), json.loads(json_path.read_text(encoding="utf-8"))
        for item in report["not_evaluated"]:
            context.log.warning(f"not evaluated: {item['what']}: {item['reason']}")
        metadata = report_metadata(report, markdown, md_path) | {"settings": dg.MetadataValue.json(used)}
        return dg.MaterializeResult(metadata=metadata,
                                    data_version=dg.DataVersion(files_sha256([json_path])))

    return [eval_report]

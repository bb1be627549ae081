"""eval_report[depth|flops]: CORE of the base model, chat evaluation of the SFT model, the report card.

Each evaluation runs the core's own command in a child process (what a user types by hand, with
NANOCHAT_BASE_DIR pointing at the preset's root), then the report card is written from what they
recorded. What could not be evaluated (no bundle, no task data) is said in the card, not failed on.
"""

import json
import os
import subprocess
import sys

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.common.file_hash import files_sha256
from nanochat_pipeline.assets.chat import SFT_MODEL_CHECKS
from nanochat_pipeline.assets.eval_inputs import child_env, device_type, task_data_dir
from nanochat_pipeline.partitions import cell_from_key
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.required_files import require_files
from nanochat_pipeline.staleness import require_checks_passed

def run_core_command(context, module: str, args: list[str], env: dict) -> None:
    """Run `python -m <module> <args>`, its output into the step's log; a failure fails the step."""
    command = [sys.executable, "-m", module, *args]
    context.log.info("running " + " ".join(command))
    proc = subprocess.run(command, env=os.environ | env, capture_output=True, text=True)
    for line in (proc.stdout + proc.stderr).splitlines()[-60:]:
        context.log.info(line)
    if proc.returncode != 0:
        raise dg.Failure(f"{module} exited with {proc.returncode}; its last lines are in this step's log")


def evaluation_commands(preset: Preset, tag: str, bundle_ready: bool) -> list[tuple[str, list[str]]]:
    e = preset.evaluation
    commands = []
    if bundle_ready:
        commands.append(("nanochat_core.cli.base_eval", [
            "--eval", "core", "--model-tag", tag, "--max-per-task", str(e.get("core_max_per_task", -1)),
            "--bundle-dir", str(settings.eval_bundle_dir(preset.root)), "--device-type", device_type(preset)]))
    # the SFT model, and the RL model too when the cell has one (the report card's RL column)
    sources = ["sft"] + (["rl"] if (settings.chatrl_checkpoints_dir(preset.root) / tag).is_dir() else [])
    for source in sources:
        chat = ["-i", source, "-g", tag, "--task-data", str(task_data_dir(preset)), "--device-type", device_type(preset)]
        if e.get("chat_tasks"):  # else chat_eval's default: all five tasks
            chat += ["-a", str(e["chat_tasks"])]
        if e.get("chat_max_problems"):
            chat += ["-x", str(e["chat_max_problems"])]
        commands.append(("nanochat_core.cli.chat_eval", chat))
    return commands


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

    @dg.asset(group_name="evaluation", code_version="1", partitions_def=partitions,
              deps=[sft_model_asset, rl_model_asset, eval_bundle_asset, task_data_asset],
              description="CORE (base model) + chat evaluation (SFT model, and RL model when the cell has one) "
                          "and the report card of one cell.")
    def eval_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from nanochat_core.report.card import write_report

        cell = cell_from_key(partitions, context.partition_key)
        tag = cell.model_tag
        require_files("eval_report", [settings.chatsft_checkpoints_dir(root) / tag], "sft_model")
        require_checks_passed("eval_report", context.instance, SFT_MODEL_CHECKS, context.partition_key)
        bundle_ready = (settings.eval_bundle_dir(root) / "core.yaml").is_file()
        if not bundle_ready:
            context.log.warning("no eval bundle (see the eval_bundle asset): CORE is not evaluated")
        for module, args in evaluation_commands(preset, tag, bundle_ready):
            run_core_command(context, module, args, child_env(preset))
        md_path, json_path = write_report(tag, root)
        markdown, report = md_path.read_text(encoding="utf-8"), json.loads(json_path.read_text(encoding="utf-8"))
        for item in report["not_evaluated"]:
            context.log.warning(f"not evaluated: {item['what']}: {item['reason']}")
        return dg.MaterializeResult(metadata=report_metadata(report, markdown, md_path),
                                    data_version=dg.DataVersion(files_sha256([json_path])))

    return [eval_report]

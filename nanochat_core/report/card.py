"""The report card: one markdown page + JSON twin summing up a model's run, from recorded files only.

    report/<tag>/report.md, report/<tag>/report.json   (under $NANOCHAT_BASE_DIR, or `root`)

Sections: environment header, tokenizer, base training, base evaluation (CORE), SFT, chat
evaluation, RL and the RL model's chat evaluation (only for a model that had RL), a summary table and
wall time. The JSON is built first and the markdown is rendered
from it, so both always say the same thing. What could not be evaluated is listed with its reason
(the missing file), never silently left out. The pipeline's eval_report asset calls write_report.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from nanochat_core.common import settings
from nanochat_core.common.atomic import write_json_atomic, write_text_atomic
from nanochat_core.report.environment import environment
from nanochat_core.report.markdown import SECTION_TITLES
from nanochat_core.report.rl import rl_section
from nanochat_core.report.sources import (base_eval_section, base_training_section, chat_eval_section, sft_section,
                                          tokenizer_section)

# (row label, section, key): the summary table, in nanochat's order.
SUMMARY_ROWS = [("CORE", "base", "CORE"), ("ARC-Easy", "sft", "ARC-Easy"), ("ARC-Challenge", "sft", "ARC-Challenge"),
                ("MMLU", "sft", "MMLU"), ("GSM8K", "sft", "GSM8K"), ("HumanEval", "sft", "HumanEval"),
                ("ChatCORE", "sft", "ChatCORE")]


def _summary(sections: dict) -> dict:
    base, chat = sections["base_evaluation"], sections["chat_evaluation"]
    values = {"base": {}, "sft": {}}
    if base["status"] == "ok":
        values["base"]["CORE"] = base["core"]
    for col, sec in (("sft", chat), ("rl", sections.get("rl_chat_evaluation"))):
        if sec is not None and sec["status"] == "ok":
            values[col] = {task: (result or {}).get("accuracy") for task, result in sec["tasks"].items()}
            values[col]["ChatCORE"] = sec["chatcore"]
    summary = {label: {col: values[col].get(key)} for label, col, key in SUMMARY_ROWS}
    if "rl" in sections:  # the RL model's chat evaluation beside the SFT one's
        for label, col, key in SUMMARY_ROWS:
            if col == "sft":
                summary[label]["rl"] = values.get("rl", {}).get(key)
    return summary


def _not_evaluated(sections: dict) -> list[dict]:
    out = []
    for name, sec in sections.items():
        if sec["status"] != "ok":
            out.append({"what": SECTION_TITLES[name], "reason": sec["reason"]})
        for task, reason in (sec.get("skipped") or {}).items():
            out.append({"what": f"{SECTION_TITLES[name]}: {task}", "reason": reason})
    tok = sections["tokenizer"]
    if tok["status"] == "ok" and tok["compression"]["val_shard"].get("status") == "missing":
        out.append({"what": "Tokenizer compression on the validation shard",
                    "reason": tok["compression"]["val_shard"]["reason"]})
    return out


def _timing(sections: dict, start_time: datetime | None) -> dict:
    """Wall time = from the run's start (given, else the first artifact) to the last artifact written."""
    mtimes = [Path(f).stat().st_mtime for sec in sections.values() for f in sec.get("files", []) if Path(f).exists()]
    start = start_time.timestamp() if start_time else (min(mtimes) if mtimes else None)
    end = max(mtimes) if mtimes else None
    trained = [sec.get("training_seconds") for sec in (sections["base_training"], sections["sft"], sections.get("rl", {}))]

    def iso(t):
        return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds") if t else None

    return {"start": iso(start), "last_artifact": iso(end),
            "total_wall_time_sec": end - start if start is not None and end is not None and end >= start else None,
            "recorded_training_sec": sum(t for t in trained if t) or None}


def build_report(model_tag: str, root: Path | None = None, start_time: datetime | None = None,
                 val_chars: int = 1_000_000) -> tuple[str, dict]:
    """(markdown, json dict) for a model tag from the files under `root` ($NANOCHAT_BASE_DIR by default)."""
    from nanochat_core.report.markdown import render_markdown

    base = base_training_section(model_tag, root)
    sections = {
        "tokenizer": tokenizer_section(root, val_chars=val_chars),
        "base_training": base,
        "base_evaluation": base_eval_section(model_tag, base.get("step"), root),
        "sft": sft_section(model_tag, root),
        "chat_evaluation": chat_eval_section(model_tag, "sft", root),
    }
    rl = rl_section(model_tag, root)
    if rl is not None:  # RL is optional: a model without it has no RL sections, and nothing "not evaluated"
        sections["rl"] = rl
        sections["rl_chat_evaluation"] = chat_eval_section(model_tag, "rl", root)
    report = {"model_tag": model_tag, "environment": environment(start_time), **sections,
              "summary": _summary(sections), "not_evaluated": _not_evaluated(sections),
              "timing": _timing(sections, start_time)}
    return render_markdown(report), report


def report_paths(model_tag: str, root: Path | None = None) -> tuple[Path, Path]:
    folder = settings.report_dir(root) / model_tag
    return folder / "report.md", folder / "report.json"


def write_report(model_tag: str, root: Path | None = None, start_time: datetime | None = None) -> tuple[Path, Path]:
    """Build and write report.md and report.json atomically; returns their paths."""
    markdown, data = build_report(model_tag, root, start_time)
    md_path, json_path = report_paths(model_tag, root)
    write_json_atomic(json_path, data)
    write_text_atomic(md_path, markdown)
    return md_path, json_path

"""The report card: one markdown page + JSON twin summing up a model's run, from recorded files only.

    report/<tag>/report.md, report/<tag>/report.json   (under $NANOCHAT_BASE_DIR, or `root`)

Sections: environment header, where the evaluation data came from (or why none could be had),
tokenizer, base training, base evaluation (CORE), SFT, chat evaluation, RL and the RL model's chat
evaluation (only for a model that had RL), a summary table (accuracies with their standard errors;
every row without a number says why) and wall time. The JSON is built first and the markdown is rendered
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

# (row label, section, key): the summary table, in nanochat's order, then our Arithmetic (the
# generated test split, which needs no data) and the base model's validation bpb (no data either).
SUMMARY_ROWS = [("CORE", "base", "CORE"), ("ARC-Easy", "sft", "ARC-Easy"), ("ARC-Challenge", "sft", "ARC-Challenge"),
                ("MMLU", "sft", "MMLU"), ("GSM8K", "sft", "GSM8K"), ("HumanEval", "sft", "HumanEval"),
                ("ChatCORE", "sft", "ChatCORE"), ("Arithmetic", "sft", "Arithmetic"), ("val bpb", "base", "val_bpb")]
CHAT_SECTIONS = {"sft": "chat_evaluation", "rl": "rl_chat_evaluation"}


def _summary(sections: dict) -> tuple[dict, dict]:
    """({row: {column: value}}, {row: {column: standard error}}) of the summary table."""
    base, chat = sections["base_evaluation"], sections["chat_evaluation"]
    values, errors = {"base": {}, "sft": {}}, {"base": {}, "sft": {}, "rl": {}}
    if base["status"] == "ok":
        values["base"]["CORE"] = base["core"]
    if sections["base_training"]["status"] == "ok":
        values["base"]["val_bpb"] = sections["base_training"]["val_bpb"]
    for col, sec in (("sft", chat), ("rl", sections.get("rl_chat_evaluation"))):
        if sec is not None and sec["status"] == "ok":
            values[col] = {task: (result or {}).get("accuracy") for task, result in sec["tasks"].items()}
            errors[col] = {task: (result or {}).get("stderr") for task, result in sec["tasks"].items()}
            values[col]["ChatCORE"] = sec["chatcore"]
    columns = {label: [col] + (["rl"] if col == "sft" and "rl" in sections else []) for label, col, _ in SUMMARY_ROWS}
    summary = {label: {c: values.get(c, {}).get(key) for c in columns[label]} for label, _, key in SUMMARY_ROWS}
    stderr = {label: {c: errors[c][key] for c in columns[label] if errors[c].get(key) is not None}
              for label, _, key in SUMMARY_ROWS}
    return summary, {label: e for label, e in stderr.items() if e}


def _rl_held_out(sections: dict) -> dict | None:
    """RL's change on the held-out Arithmetic test split (greedy chat_eval of the SFT and the RL model):
    both accuracies, the change, its standard error sqrt(se_sft^2 + se_rl^2) (the same problems, so
    this overstates it: a change beyond it is real) and whether |change| > 2 x that error."""
    sft, rl = sections["chat_evaluation"], sections.get("rl_chat_evaluation")
    if rl is None or sft["status"] != "ok" or rl["status"] != "ok":
        return None
    a, b = sft["tasks"].get("Arithmetic"), rl["tasks"].get("Arithmetic")
    if not a or not b or a.get("stderr") is None or b.get("stderr") is None:
        return None
    se = (a["stderr"] ** 2 + b["stderr"] ** 2) ** 0.5
    change = b["accuracy"] - a["accuracy"]
    return {"sft": a["accuracy"], "sft_stderr": a["stderr"], "rl": b["accuracy"], "rl_stderr": b["stderr"],
            "problems": b["num_problems"], "change": change, "change_stderr": se,
            "beyond_error": abs(change) > 2 * se}


def _why_empty(sections: dict, summary: dict, inputs: dict) -> dict:
    """{row: why it has no number}, for every summary row with no number in any column; CORE's reason
    leads with what the caller knows about the bundle (no network, say) when there is none."""
    out = {}
    for label, section, key in SUMMARY_ROWS:
        if any(v is not None for v in summary[label].values()):
            continue
        if section == "base":
            sec = sections["base_evaluation"] if key == "CORE" else sections["base_training"]
            out[label] = sec.get("reason") or ("no task of the bundle could be scored" if key == "CORE" else "not recorded")
            if key == "CORE" and sec["status"] != "ok" and inputs.get("eval_bundle"):
                out[label] = f"{inputs['eval_bundle']} ({out[label]})"
            continue
        sec = sections["chat_evaluation"]
        if sec["status"] != "ok":
            out[label] = sec["reason"]
        elif key == "ChatCORE":
            out[label] = "needs all five of ARC-Easy, ARC-Challenge, MMLU, GSM8K, HumanEval"
        elif key in sec["skipped"]:
            out[label] = sec["skipped"][key]
        else:
            out[label] = "not asked for (the preset's chat_tasks)"
    return out


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
                 val_chars: int = 1_000_000, inputs: dict | None = None) -> tuple[str, dict]:
    """(markdown, json dict) for a model tag from the files under `root` ($NANOCHAT_BASE_DIR by default).
    `inputs` ({"eval_bundle": note, "task_data": note}) is what the caller knows about where the
    evaluation data came from, or why it could not be had (no network); shown as given."""
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
    summary, stderr = _summary(sections)
    report = {"model_tag": model_tag, "environment": environment(start_time), "inputs": dict(inputs or {}), **sections,
              "summary": summary, "summary_stderr": stderr, "summary_empty": _why_empty(sections, summary, dict(inputs or {})),
              "rl_held_out": _rl_held_out(sections),
              "not_evaluated": _not_evaluated(sections), "timing": _timing(sections, start_time)}
    from nanochat_core.report.scaling_section import scaling_markdown, scaling_section

    report["scaling"] = scaling_section(root)  # the sweep's law, its backtest and plans (H3's fit.json), if any
    return "\n".join([render_markdown(report).rstrip("\n"), *scaling_markdown(report["scaling"])]) + "\n", report


def report_paths(model_tag: str, root: Path | None = None) -> tuple[Path, Path]:
    folder = settings.report_dir(root) / model_tag
    return folder / "report.md", folder / "report.json"


def write_report(model_tag: str, root: Path | None = None, start_time: datetime | None = None,
                 inputs: dict | None = None) -> tuple[Path, Path]:
    """Build and write report.md and report.json atomically; returns their paths."""
    markdown, data = build_report(model_tag, root, start_time, inputs=inputs)
    md_path, json_path = report_paths(model_tag, root)
    write_json_atomic(json_path, data)
    write_text_atomic(md_path, markdown)
    return md_path, json_path

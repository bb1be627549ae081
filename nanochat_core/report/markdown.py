"""Render the report card's JSON as markdown (the page people read, and the asset's metadata)."""
from __future__ import annotations

# the report card's sections, in order: key in the report dict -> heading
SECTION_TITLES = {"tokenizer": "Tokenizer", "base_training": "Base training", "base_evaluation": "Base evaluation (CORE)",
                  "sft": "SFT", "chat_evaluation": "Chat evaluation", "rl": "RL",
                  "rl_chat_evaluation": "Chat evaluation of the RL model"}

DASH = "-"


def fmt(x, spec: str = ",") -> str:
    if x is None:
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def _duration(seconds) -> str:
    if seconds is None:
        return DASH
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _missing(sec: dict) -> list[str] | None:
    return None if sec["status"] == "ok" else [f"Not available: {sec['reason']}"]


def _plus_minus(value, error) -> str:
    return fmt(value, ".4f") + (f" ± {error:.4f}" if value is not None and error is not None else "")


def _inputs(r: dict) -> list[str]:
    """Where the evaluation data came from, or why it could not be had (no network, offline)."""
    names = {"eval_bundle": "Eval bundle (CORE)", "task_data": "Chat task data"}
    return [f"- {names.get(k, k)}: {v}" for k, v in r.get("inputs", {}).items()]


def _header(r: dict) -> list[str]:
    env = r["environment"]
    git = env["git"]
    commit = f"{git['commit'][:12]}{' (uncommitted changes)' if git.get('dirty') else ''}" if git else "not a git checkout"
    gpus = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in env["gpus"]) or "none"
    return [f"# nanochat report card: `{r['model_tag']}`", "",
            f"- Generated: {env['generated_at']}" + (f" (run started {env['start_time']})" if env["start_time"] else ""),
            f"- Git commit: {commit}", f"- Platform: {env['platform']}",
            f"- CPU: {env['cpu']} ({env['cpu_count']} cores); memory {fmt(env['memory_gib'])} GiB",
            f"- GPU: {gpus}", f"- Python {env['python']}, torch {env['torch']}"]


def _tokenizer(sec: dict) -> list[str]:
    lines = _missing(sec)
    if lines:
        return lines
    lines = [f"- Vocab size: {sec['vocab_size']:,} ({sec['merges']:,} merges, {sec['special_tokens']} special tokens)",
             f"- Token length: mean {sec['mean_token_bytes']} bytes, max {sec['max_token_bytes']} bytes", "",
             "Compression (bytes per token, higher is better):", ""]
    rows = [[name, fmt(v["bytes"]), fmt(v["tokens"]), fmt(v["bytes_per_token"], ".2f")]
            for name, v in sec["compression"]["samples"].items()]
    val = sec["compression"]["val_shard"]
    rows.append(["val shard", fmt(val.get("bytes")), fmt(val.get("tokens")), fmt(val.get("bytes_per_token"), ".2f")]
                if val.get("status") != "missing" else ["val shard", DASH, DASH, DASH])
    return lines + _table(["text", "bytes", "tokens", "bytes/token"], rows)


def _base(sec: dict) -> list[str]:
    lines = _missing(sec)
    if lines:
        return lines
    c = sec["param_counts"]
    return [f"- Checkpoint: `{sec['checkpoint']}` (step {sec['step']:,} of {fmt(sec['num_iterations'])})",
            f"- Depth {sec['depth']}, model dim {sec['model_config'].get('n_embd')}, "
            f"sequence {sec['model_config'].get('sequence_len')}, vocab {sec['model_config'].get('vocab_size'):,}",
            f"- Parameters: {c['total']:,} total; scaling N (transformer + lm_head) {sec['scaling_params']:,}; "
            f"wte {c['wte']:,}, value embeds {c['value_embeds']:,}, scalars {c['scalars']:,}",
            f"- FLOPs/token {fmt(sec['flops_per_token'], '.3e')}; total training FLOPs {fmt(sec['total_flops'], '.3e')}",
            f"- Tokens trained {fmt(sec['tokens_trained'])} (tokens:params {fmt(sec['param_data_ratio'], '.2f')}), "
            f"batch {fmt(sec['total_batch_size'])} tokens",
            f"- Training time {_duration(sec['training_seconds'])}; {fmt(sec['tokens_per_sec'], ',.0f')} tokens/s; "
            f"MFU {fmt(sec['mfu'], '.2f') + '%' if sec['mfu'] is not None else DASH + ' (' + sec['mfu_note'] + ')'}",
            f"- Validation bpb {fmt(sec['val_bpb'], '.4f')} (min {fmt(sec['min_val_bpb'], '.4f')})"]


def _base_eval(sec: dict) -> list[str]:
    lines = _missing(sec)
    if lines:
        return lines
    skipped = list(sec["skipped"])
    cap = sec.get("max_per_task")
    lines = [f"- From `{sec['file']}`" + (" (an earlier step than the last checkpoint)" if sec["stale"] else ""),
             f"- CORE: {fmt(sec['core'], '.4f')}"
             + (f" (PARTIAL: over {len(sec['tasks']) - len(skipped)} of {len(sec['tasks'])} tasks; "
                f"missing: {', '.join(skipped)})" if sec["partial"] else ""),
             "- Examples per task: " + (f"at most {cap} (the preset's core_max_per_task)" if cap and cap > 0 else "all"),
             f"- Prompts cropped to the context: {sec['cropped_prompts']}", ""]
    rows = [[label, fmt(t.get("accuracy"), ".4f"), fmt(t.get("centered"), ".4f"),
             "skipped" if label in sec["skipped"] or t.get("skipped") else ""]
            for label, t in sec["tasks"].items()]
    return lines + _table(["task", "accuracy", "centered", ""], rows)


def _sft(sec: dict) -> list[str]:
    lines = _missing(sec)
    if lines:
        return lines
    lines = [f"- Checkpoint: `{sec['checkpoint']}` (step {sec['step']:,} of {fmt(sec['num_iterations'])})"
             + (f", fine-tuned from {sec['base_model']}" if sec.get("base_model") else ""),
             f"- Validation bpb {fmt(sec['val_bpb'], '.4f')}" + (f", loss {sec['val_loss']:.4f}" if sec["val_loss"] else ""),
             f"- Training time {_duration(sec['training_seconds'])}; rows of {fmt(sec['max_seq_len'])} tokens, "
             f"{fmt(sec['total_batch_size'])} tokens per step"]
    mixture = sec.get("mixture") or {}
    if isinstance(mixture, dict) and mixture.get("sources"):
        lines.append(f"- Conversations too long for a row (left out): {fmt(sec.get('conversations_too_long'))}")
        rows = [[s.get("name"), fmt(s.get("conversations")), fmt(s.get("epochs"))] for s in mixture["sources"]]
        rows += [[m.get("name"), DASH, f"left out: {m.get('reason')}"] for m in mixture.get("left_out", [])]
        lines += [""] + _table(["mixture source", "conversations", "epochs"], rows)
    return lines


def _chat(sec: dict) -> list[str]:
    lines = _missing(sec)
    if lines:
        return lines
    lines = [f"- From `{sec['file']}`",
             f"- ChatCORE: {fmt(sec['chatcore'], '.4f')}" + (" (PARTIAL: not every task ran)" if sec["partial"] else ""),
             ""]
    rows = [[task, _plus_minus((t or {}).get("accuracy"), (t or {}).get("stderr")), fmt((t or {}).get("centered"), ".4f"),
             fmt((t or {}).get("num_problems"))] for task, t in sec["tasks"].items()]
    rows += [[task, DASH, DASH, f"skipped: {reason}"] for task, reason in sec["skipped"].items()
             if task not in sec["tasks"]]
    return lines + _table(["task", "accuracy ± standard error", "centered", "problems"], rows)


def render_markdown(r: dict) -> str:
    from nanochat_core.report.rl import rl_markdown

    out = _header(r)
    if r.get("inputs"):
        out += ["", "## Evaluation data", ""] + _inputs(r)
    renderers = {"tokenizer": _tokenizer, "base_training": _base, "base_evaluation": _base_eval, "sft": _sft,
                 "chat_evaluation": _chat, "rl": rl_markdown, "rl_chat_evaluation": _chat}
    for key, title in SECTION_TITLES.items():
        if key in r:  # the RL sections only for a model that had RL
            out += ["", f"## {title}", ""] + renderers[key](r[key])
    out += ["", "## Summary", ""]
    columns = ["base", "sft"] + (["rl"] if "rl" in r else [])
    errors = r.get("summary_stderr", {})
    out += _table(["Metric", *map(str.upper, columns)],
                  [[label, *(_plus_minus(v.get(c), errors.get(label, {}).get(c)) if c in v else DASH for c in columns)]
                   for label, v in r["summary"].items()])
    base_eval = r.get("base_evaluation") or {}
    if base_eval.get("status") == "ok" and base_eval.get("partial") and r["summary"].get("CORE", {}).get("base") is not None:
        core_row = next(i for i, line in enumerate(out) if line.startswith("| CORE |"))
        out[core_row] = out[core_row].replace("| CORE |", "| CORE (partial) |", 1)
    out += ["", "Accuracies ± their standard error, sqrt(p(1-p)/n) over the n problems; val bpb is the base "
                "model's on the validation shard."]
    held_out = r.get("rl_held_out")
    if held_out:
        verdict = "beyond its error: RL moved it" if held_out["beyond_error"] else \
            "within its error: no change this run can show"
        out += ["", f"RL on the held-out Arithmetic test split (greedy, {held_out['problems']} problems): "
                    f"SFT {held_out['sft']:.4f} ± {held_out['sft_stderr']:.4f}, RL {held_out['rl']:.4f} ± "
                    f"{held_out['rl_stderr']:.4f}, a change of {held_out['change']:+.4f} ± "
                    f"{held_out['change_stderr']:.4f}: {verdict}."]
    empty = r.get("summary_empty") or {}
    if empty:
        out += ["", "Rows without a number:", ""] + [f"- {label}: {why}" for label, why in empty.items()]
    t = r["timing"]
    out += ["", f"Total wall time: {_duration(t['total_wall_time_sec'])}"
            f" (from {t['start'] or DASH} to the last artifact at {t['last_artifact'] or DASH}); "
            f"recorded training time {_duration(t['recorded_training_sec'])}"]
    if r["not_evaluated"]:
        out += ["", "## Not evaluated", ""] + [f"- {n['what']}: {n['reason']}" for n in r["not_evaluated"]]
    return "\n".join(out) + "\n"

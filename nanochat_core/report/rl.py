"""The report card's RL section: what chat_rl recorded in its last checkpoint's meta (nothing from logs).

Present only when the model has an RL checkpoint folder (RL is optional: a card without it is not
missing anything). Shows the task RL trained on, the mean reward curve (per step, as recorded) and
pass@k on the test split at the first and the last evaluation, with pass@1's standard error and
whether its change is beyond that error (two standard errors of the difference). The two
evaluations score the same problems, so treating them as independent overstates the error of the
difference: a change called beyond error is one; one called within error may still be real.
"""
from __future__ import annotations

import math
from pathlib import Path

from nanochat_core.common import settings

CURVE_ROWS = 12  # the reward curve's table keeps at most this many steps (evenly spread, last included)


def rl_section(model_tag: str, root: Path | None = None) -> dict | None:
    """The section dict, {"status": "missing", ...} for a folder without a complete checkpoint, or None
    when this model had no RL at all."""
    from nanochat_core.model.checkpoint import find_last_step, load_meta, meta_path

    folder = settings.chatrl_checkpoints_dir(root) / model_tag
    if not folder.is_dir():
        return None
    try:
        step = find_last_step(folder)
    except FileNotFoundError as e:
        return {"status": "missing", "reason": f"no RL model: {e}"}
    meta, path = load_meta(folder, step), meta_path(folder, step)
    history = meta.get("rl_history") or {}
    evals = history.get("pass_at_k") or []
    task = meta.get("task") or {}
    return {
        "status": "ok", "checkpoint": str(path), "step": step, "num_iterations": meta.get("num_iterations"),
        "finished": meta.get("finished"), "task_name": meta.get("task_name"),
        "task": (task.get("train") or {}).get("name"), "train_questions": (task.get("train") or {}).get("questions"),
        "test_questions": (task.get("test") or {}).get("questions"),
        "sft_model": f"{meta.get('sft_model_tag')} step {meta.get('sft_step')}",
        "examples_per_step": meta.get("examples_per_step"), "num_samples": meta.get("num_samples"),
        "training_seconds": (meta.get("loop_state") or {}).get("total_training_time"),
        "reward_curve": [{"step": r["step"], "mean_reward": r["mean_reward"],
                          "mean_sequence_length": r["mean_sequence_length"]} for r in history.get("rewards") or []],
        "pass_at_k_before": evals[0] if evals else None,
        "pass_at_k_after": evals[-1] if len(evals) > 1 else None,
        "pass_at_1": pass_at_1_change(evals[0] if evals else None, evals[-1] if len(evals) > 1 else None),
        "files": [str(path)],
    }


def pass_at_1_change(before: dict | None, after: dict | None) -> dict | None:
    """pass@1 before and after RL with standard errors sqrt(p(1-p)/n), the change, its error
    sqrt(se_b^2 + se_a^2), and whether |change| > 2 x that error."""
    if before is None or after is None:
        return None
    n_b, n_a = before["problems"], after["problems"]
    p_b, p_a = before["pass_at_k"][0], after["pass_at_k"][0]
    se_b, se_a = math.sqrt(p_b * (1 - p_b) / n_b), math.sqrt(p_a * (1 - p_a) / n_a)
    se = math.sqrt(se_b ** 2 + se_a ** 2)
    change = p_a - p_b
    return {"before": p_b, "before_stderr": se_b, "after": p_a, "after_stderr": se_a, "change": change,
            "change_stderr": se, "beyond_error": abs(change) > 2 * se, "problems": n_a}


def curve_rows(curve: list[dict], limit: int = CURVE_ROWS) -> list[dict]:
    """At most `limit` points of the curve, evenly spread, the first and last always kept."""
    if len(curve) <= limit:
        return curve
    picks = sorted({round(i * (len(curve) - 1) / (limit - 1)) for i in range(limit)})
    return [curve[i] for i in picks]


def rl_markdown(sec: dict) -> list[str]:
    if sec["status"] != "ok":
        return [f"Not available: {sec['reason']}"]
    lines = [f"- Checkpoint: `{sec['checkpoint']}` (step {sec['step']:,} of {sec['num_iterations']}"
             f"{'' if sec['finished'] else ', interrupted'}), from the SFT model {sec['sft_model']}",
             f"- Task: {sec['task']} (`--task {sec['task_name']}`): {sec['train_questions']:,} training questions, "
             f"{sec['examples_per_step']} per step x {sec['num_samples']} samples"]
    before, after = sec["pass_at_k_before"], sec["pass_at_k_after"]
    if before is None:
        lines.append("- pass@k: not evaluated (--eval-every <= 0)")
    else:
        k = len(before["pass_at_k"])
        header = ["", *[f"pass@{j + 1}" for j in range(k)]]
        rows = [[f"step {e['step']} ({label})", *[f"{r:.4f}" for r in e["pass_at_k"]]]
                for label, e in (("before RL", before), ("after RL", after)) if e is not None]
        lines += ["", f"pass@k on {before['problems']} test questions:", "",
                  "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        change = sec.get("pass_at_1")
        if change:
            verdict = ("beyond its error: RL moved it" if change["beyond_error"] else
                       "within its error: no change this run can show")
            lines += ["", f"pass@1 {change['before']:.4f} ± {change['before_stderr']:.4f} before RL, "
                          f"{change['after']:.4f} ± {change['after_stderr']:.4f} after: a change of "
                          f"{change['change']:+.4f} ± {change['change_stderr']:.4f}, {verdict} "
                          f"(sampled at the training temperature; ± one standard error)"]
    curve = curve_rows(sec["reward_curve"])
    if curve:
        lines += ["", "Mean reward per step (training rollouts):", "", "| step | mean reward | mean sequence length |",
                  "|---|---|---|"]
        lines += [f"| {r['step']} | {r['mean_reward']:.4f} | {r['mean_sequence_length']:.1f} |" for r in curve]
    return lines

"""CORE (DCLM) for a base model: every core.yaml task, centered and averaged (nanochat's nanochat/core_eval.py and scripts/base_eval.py).

evaluate_model is what base_train's periodic CORE and base_eval call (see train/core_hook.py).
A task whose data file is missing is skipped and makes CORE partial; that is said in the returned
result, the log line (format_core) and both results files, never averaged away silently.

Under torchrun each rank scores the examples idx with idx % world == rank and the counts (correct,
scored, cropped, unscorable) are summed over ranks, as nanochat does: the accuracy is total correct
/ total scored, the single-process number. Every rank must call this (the sums are collectives);
the caller logs and writes on rank 0 only.
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from nanochat_core.common.atomic import write_json_atomic, write_text_atomic
from nanochat_core.evaluation.core_bundle import bundle_provenance, ensure_bundle
from nanochat_core.evaluation.core_scoring import crop_example, is_correct, score_rows
from nanochat_core.evaluation.core_tasks import TaskSpec, build_example, load_rows, load_tasks
from nanochat_core.common.collectives import failing_together, rank_and_world, sum_over_ranks


def evaluate_model(model, tokenizer, device, max_per_task: int = -1, bundle_dir=None, batch_size: int = 32,
                   context: int | None = None, log=print) -> dict:
    """{"core_metric", "partial", "skipped", "tasks", "cropped_prompts", ...}; core_metric is None
    when no task could be scored. `context` defaults to the model's sequence_len."""
    bundle = ensure_bundle(bundle_dir)
    context = context or model.config.sequence_len
    tasks, skipped, cropped, unscorable = {}, [], 0, 0
    for spec in load_tasks(bundle):
        t0 = time.time()
        if not spec.data_path.is_file():
            tasks[spec.label] = {"accuracy": None, "centered": None, "skipped": True,
                                 "reason": f"data file {spec.data_path} is missing"}
            skipped.append(spec.label)
            log(f"{spec.label}: skipped ({tasks[spec.label]['reason']})")
            continue
        result = evaluate_task(model, tokenizer, device, spec, max_per_task, batch_size, context)
        cropped += result["cropped_prompts"]
        unscorable += result["unscorable_examples"]
        tasks[spec.label] = result
        if result["skipped"]:
            skipped.append(spec.label)
            log(f"{spec.label}: skipped ({result['reason']})")
        else:
            log(f"{spec.label}: accuracy {result['accuracy']:.4f} | centered {result['centered']:.4f} | "
                f"{result['examples']} examples | {result['cropped_prompts']} prompts cropped | {time.time() - t0:.1f}s"
                + (f" | {result['unscorable_reason']}" if result["unscorable_examples"] else ""))
    scored = [t["centered"] for t in tasks.values() if not t["skipped"]]
    out = {"core_metric": sum(scored) / len(scored) if scored else None, "partial": bool(skipped),
           "skipped": skipped, "tasks": tasks, "cropped_prompts": cropped,
           "unscorable_examples": unscorable, "context": context,
           "max_per_task": max_per_task, "bundle_dir": str(bundle), "bundle": bundle_provenance(bundle)}
    if cropped or unscorable:
        log(f"CORE: {cropped} prompt(s) cropped from the left to the {context}-token context; "
            f"{unscorable} example(s) left out (scored span longer than the context, or empty)")
    log(f"CORE metric: {format_core(out)}")
    return out


def evaluate_task(model, tokenizer, device, spec: TaskSpec, max_per_task: int, batch_size: int,
                  context: int) -> dict:
    # The scored items are the first max_per_task of the shuffled rows (nanochat's subsample); their
    # few-shot examples come from all the rows but the item, so a 10-shot task scores with any
    # --max-per-task (nanochat drew them from the cut, which fails below 11). Without a cut the
    # two are the same rows, and every prompt is nanochat's.
    rows = load_rows(spec.data_path, -1)
    n_items = len(rows) if max_per_task <= 0 else min(len(rows), max_per_task)
    if rows and spec.num_fewshot >= len(rows):
        raise ValueError(f"{spec.data_path}: {spec.label} is {spec.num_fewshot}-shot, which needs at least "
                         f"{spec.num_fewshot + 1} rows; the file has {len(rows)}")
    rank, world = rank_and_world()
    fitted, gold, too_long = [], [], 0
    with failing_together(device, f"{spec.data_path}: another process found a malformed row (see its error)"):
        for idx in range(rank, n_items, world):  # this rank's share of the examples
            ex = build_example(spec, rows, idx, tokenizer)
            cropped_rows = crop_example(ex, context)
            if cropped_rows is None:
                too_long += 1
                continue
            fitted.append(cropped_rows)
            gold.append(ex.gold)
    flat = [r for ex_rows in fitted for r in ex_rows]
    results = score_rows(model, flat, tokenizer.get_bos_token_id(), device, batch_size)
    correct, pos = 0, 0
    for ex_rows, g in zip(fitted, gold):
        correct += is_correct(spec.task_type, g, results[pos:pos + len(ex_rows)])
        pos += len(ex_rows)
    correct, scored, too_long, cropped = sum_over_ranks(
        [correct, len(fitted), too_long, sum(r.cropped for r in flat)], device)
    base = {"examples": scored, "unscorable_examples": too_long,
            "cropped_prompts": cropped, "num_fewshot": spec.num_fewshot,
            "random_baseline": spec.baseline}
    if too_long:
        base["unscorable_reason"] = (f"{too_long} example(s) have a scored span that does not fit the "
                                     f"{context}-token context (or is empty) and were left out")
    if not scored:
        return {**base, "accuracy": None, "centered": None, "skipped": True,
                "reason": f"no example could be scored ({base.get('unscorable_reason', 'the data file has no rows')})"}
    accuracy = correct / scored
    b = spec.baseline / 100
    return {**base, "accuracy": accuracy, "centered": (accuracy - b) / (1 - b), "skipped": False}


def format_core(result: dict) -> str:
    """`0.1234`, `0.1234 (partial: 1 of 3 tasks skipped: label)` or `n/a (...)`, for log lines."""
    n, skipped = len(result["tasks"]), result["skipped"]
    note = f"{len(skipped)} of {n} tasks skipped: {', '.join(skipped)}"
    if result["core_metric"] is None:
        return f"n/a (no task could be scored; {note})"
    return f"{result['core_metric']:.4f}" + (f" (partial: {note})" if skipped else "")


def write_results(result: dict, out_dir: Path, model_tag: str, step: int) -> tuple[Path, Path]:
    """base_eval/<tag>_<step:06d>.csv (Task,Accuracy,Centered; empty cells for a skipped task; last row
    `CORE` always, so parsers that look for nanochat's row find it) and its JSON twin, both atomic; a
    partial run (tasks skipped) says so in the JSON's `partial` and `skipped`, the log and the card."""
    stem = Path(out_dir) / f"{model_tag}_{step:06d}"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Task", "Accuracy", "Centered"])
    for label, t in result["tasks"].items():
        writer.writerow([label, _cell(t["accuracy"]), _cell(t["centered"])])
    writer.writerow(["CORE", "", _cell(result["core_metric"])])
    # names spelled out, never with_suffix: a grid cell's tag has a dot (d3_2.5e11), which with_suffix would cut
    csv_path, json_path = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".json")
    write_text_atomic(csv_path, buf.getvalue())
    write_json_atomic(json_path, {"model_tag": model_tag, "step": step, "core": result["core_metric"],
                                  "partial": result["partial"], "skipped": result["skipped"],
                                  "cropped_prompts": result["cropped_prompts"],
                                  "unscorable_examples": result["unscorable_examples"], "tasks": result["tasks"],
                                  "context": result["context"], "max_per_task": result["max_per_task"],
                                  "bundle_dir": result["bundle_dir"], "bundle": result["bundle"]})
    return csv_path, json_path


def record_core_score(meta_file: Path, result: dict) -> None:
    """Add core_score (and whether it is partial) to a checkpoint's meta json."""
    from nanochat_core.model.checkpoint import update_meta

    update_meta(meta_file, core_score=result["core_metric"], core_partial=result["partial"])


def _cell(value) -> str:
    return "" if value is None else f"{value:.6f}"

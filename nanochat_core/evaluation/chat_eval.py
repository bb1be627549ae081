"""Chat evaluation of a chat model (nanochat's scripts/chat_eval.py), and its results files.

Tasks: ARC-Easy, ARC-Challenge, MMLU (categorical), GSM8K, HumanEval (generative), nanochat's five,
and Arithmetic (generative, our generated test split: no data to fetch). Each task's accuracy is
centered on its random-guess baseline (tasks.registry.BASELINES) and carries its standard error
(sqrt(p(1-p)/n) over the n problems, each solved or not); ChatCORE is the mean of the five's
centered accuracies, given only when all five ran: a mean over fewer tasks is not comparable with
nanochat's number, so such a result says partial and has no ChatCORE. Arithmetic never enters it.
A task whose data is neither on disk nor downloadable (TaskDataMissing) is skipped with the reason;
a data file in the wrong format stops the evaluation with the file and line (TaskFileError).

Which problems: nanochat shuffles every task with seed 42 (Hugging Face datasets' shuffle, a
numpy default_rng(42) permutation) and takes the first max_problems; we take the same permutation
of the task's rows, so a capped run looks at a spread of subjects, not MMLU's first subject.

Under torchrun each rank scores every world-th of those problems (indices[rank::world]) and the
counts are summed over ranks, as nanochat does; a problem's answer does not depend on which rank
scores it (generative sampling is seeded per problem), so the result is the single-process one.
Every rank must call evaluate_chat (the sums are collectives); progress lines come from rank 0.
"""
from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path

import numpy as np

from nanochat_core.common.atomic import write_json_atomic, write_text_atomic
from nanochat_core.evaluation.chat_categorical import run_categorical
from nanochat_core.chat.lockstep import DEFAULT_BATCH_TOKENS
from nanochat_core.evaluation.chat_generative import run_generative
from nanochat_core.tasks.registry import BASELINES, CHATCORE_TASKS, EVAL_TASKS, load_eval_task
from nanochat_core.tasks.task_data import TaskDataMissing
from nanochat_core.common.collectives import any_rank, failing_together, rank_and_world, sum_over_ranks

PROBLEM_ORDER_SEED = 42
PROGRESS_EVERY_S = 10.0
SUMMED_COUNTS = ("num_problems", "num_correct", "samples_passed", "cropped_prompts")


def parse_task_names(text: str | None) -> list[str]:
    """`ARC-Easy|GSM8K` -> ["ARC-Easy", "GSM8K"]; None or empty = nanochat's five; unknown names are an error."""
    if not text:
        return list(CHATCORE_TASKS)
    names = [n.strip() for n in text.split("|") if n.strip()]
    unknown = [n for n in names if n not in EVAL_TASKS]
    if unknown or not names:
        raise ValueError(f"unknown chat task(s) {', '.join(map(repr, unknown)) or repr(text)}; "
                         f"valid names: {', '.join(EVAL_TASKS)} (separate several with '|')")
    return list(dict.fromkeys(names))


def problem_indices(n: int, max_problems: int | None) -> list[int]:
    order = np.random.default_rng(PROBLEM_ORDER_SEED).permutation(n).tolist()
    return order if max_problems is None or max_problems < 0 else order[:max_problems]


def chatcore_of(tasks: dict, skipped: dict) -> tuple[float | None, bool]:
    """(ChatCORE or None, partial): the mean centered accuracy only when all five tasks ran."""
    partial = any(name in skipped or name not in tasks for name in CHATCORE_TASKS)
    if partial:
        return None, True
    return sum(tasks[name]["centered"] for name in CHATCORE_TASKS) / len(CHATCORE_TASKS), False


def standard_error(accuracy: float, n: int) -> float:
    """The standard error of a rate of n independent solved-or-not problems: sqrt(p(1-p)/n)."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


class Progress:
    """A log line per task at most every PROGRESS_EVERY_S seconds: done/total, accuracy so far.
    Under torchrun these are rank 0's own share's numbers, and the line says so."""

    def __init__(self, name: str, total: int, log, world: int = 1):
        self.name, self.total, self.log = name, total, log
        self.share = f" (rank 0's share of {world} processes)" if world > 1 else ""
        self.t0 = self.last = time.time()

    def __call__(self, done: int, correct: int) -> None:
        now = time.time()
        if now - self.last >= PROGRESS_EVERY_S and done < self.total:
            self.last = now
            self.log(f"{self.name}: {done}/{self.total} problems{self.share}, {correct} correct "
                     f"({correct / done:.2%}), {now - self.t0:.0f}s")


def evaluate_task(model, tokenizer, device, name: str, task, max_problems: int | None, batch_size: int,
                  num_samples: int, temperature: float, top_k: int, max_new_tokens: int, context: int,
                  log=print, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> dict:
    t0 = time.time()
    rank, world = rank_and_world()
    indices = problem_indices(len(task), max_problems)[rank::world]  # this rank's share
    progress = Progress(name, len(indices), log, world) if rank == 0 else None
    counts = {}
    # e.g. a bad row or answer letter, seen by one rank only: all ranks stop, none waits at the sum below
    with failing_together(device, f"{name}: another process stopped with an error (see its message)"):
        if task.eval_type == "categorical":
            counts = run_categorical(model, tokenizer, device, task, indices, batch_size, context, progress)
        elif task.eval_type == "generative":
            counts = run_generative(model, tokenizer, task, indices, num_samples, temperature, top_k,
                                    max_new_tokens, batch_size, context, progress, batch_tokens)
        else:
            raise ValueError(f"task {name} has unknown eval_type {task.eval_type!r}")
    summed = [k for k in SUMMED_COUNTS if k in counts]
    counts |= dict(zip(summed, sum_over_ranks([counts[k] for k in summed], device)))
    accuracy = counts["num_correct"] / counts["num_problems"]
    baseline = BASELINES[name]
    return {"accuracy": accuracy, "stderr": standard_error(accuracy, counts["num_problems"]),
            "centered": (accuracy - baseline) / (1 - baseline), **counts,
            "eval_type": task.eval_type, "baseline": baseline, "seconds": round(time.time() - t0, 3)}


def evaluate_chat(model, tokenizer, device, task_names, task_data=None, max_problems=None, batch_size: int = 8,
                  num_samples: int = 1, temperature: float = 0.0, top_k: int = 50, max_new_tokens: int = 512,
                  log=print, max_problems_by_type: dict | None = None, context: int | None = None,
                  on_task_done=None, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> dict:
    """{"tasks": {name: {accuracy, centered, num_problems, num_correct, seconds, ...}}, "skipped":
    {name: reason}, "chatcore", "partial", "settings"}. Writes nothing itself: on_task_done(result so
    far), called after every task that ran or was skipped, lets a caller keep finished tasks of a run
    that is stopped later. max_problems caps every task (None = all); max_problems_by_type
    ({"categorical": n, "generative": m}, a negative or None cap = all) overrides it per kind of
    task, as ChatCORE during SFT does. batch_tokens bounds a batch of problems decoded together
    (one sample each): rows x (longest prompt + max_new_tokens) positions."""
    task_names = parse_task_names(task_names if isinstance(task_names, str) else "|".join(task_names))
    if batch_size < 1 or max_new_tokens < 1 or num_samples < 1 or batch_tokens < 1:
        raise ValueError(f"batch_size, max_new_tokens, num_samples and batch_tokens must be positive, got "
                         f"{batch_size}, {max_new_tokens}, {num_samples}, {batch_tokens}")
    # prompts are cropped to `context`: the longest rows the model trained on (an SFT run's may
    # exceed its base's sequence_len), by default the model's own
    context = context or model.config.sequence_len
    was_training = model.training
    model.eval()
    tasks, skipped = {}, {}
    settings = {"task_names": list(task_names), "max_problems": max_problems,
                "max_problems_by_type": max_problems_by_type, "batch_size": batch_size, "num_samples": num_samples,
                "temperature": temperature, "top_k": top_k, "max_new_tokens": max_new_tokens}

    def so_far() -> dict:
        chatcore, partial = chatcore_of(tasks, skipped)
        return {"tasks": dict(tasks), "skipped": dict(skipped), "chatcore": chatcore, "partial": partial,
                "settings": settings}

    def run_one(name: str, where: str) -> None:
        task, missing = None, None
        try:
            task = load_eval_task(name, task_data)
        except TaskDataMissing as e:
            missing = str(e)
        # a download may fail on one rank only: then every rank leaves the task out
        if any_rank(missing is not None, device):
            skipped[name] = missing or "its data could not be loaded by another process (see its log)"
            log(f"{name}: skipped ({skipped[name]})")
            return
        cap = max_problems
        if max_problems_by_type and task.eval_type in max_problems_by_type:
            cap = max_problems_by_type[task.eval_type]
        if len(task) == 0 or cap == 0:
            skipped[name] = "no problems to evaluate" + (f" in {', '.join(map(str, task.files))}"
                                                         if len(task) == 0 and hasattr(task, "files") else "")
            log(f"{name}: skipped ({skipped[name]})")
            return
        count = len(task) if cap is None or cap < 0 else min(len(task), cap)
        log(f"{where} {name}: {count} problems ...")
        tasks[name] = evaluate_task(model, tokenizer, device, name, task, cap, batch_size, num_samples, temperature,
                                    top_k, max_new_tokens, context, log, batch_tokens)
        log(format_task_line(name, tasks[name]))

    try:
        for number, name in enumerate(task_names, 1):
            run_one(name, f"[{number}/{len(task_names)}]")
            if on_task_done is not None:
                on_task_done(so_far())
    finally:
        model.train(was_training)
    return so_far()


def format_task_line(name: str, t: dict) -> str:
    line = (f"{name}: accuracy {t['accuracy']:.4f} +- {t['stderr']:.4f} ({t['num_correct']}/{t['num_problems']}) | "
            f"centered {t['centered']:.4f} | {t['seconds']:.1f}s")
    if t.get("cropped_prompts"):
        line += f" | {t['cropped_prompts']} prompt(s) cropped to the context"
    return line


def format_chatcore(result: dict) -> str:
    """`ChatCORE: 0.1234`, or `ChatCORE: n/a (partial: ...)` naming what did not run."""
    if result["chatcore"] is not None:
        return f"ChatCORE: {result['chatcore']:.4f}"
    missing = [n for n in CHATCORE_TASKS if n not in result["tasks"] and n not in result["skipped"]]
    ran = sum(n in result["tasks"] for n in CHATCORE_TASKS)
    notes = [f"{n} skipped" for n in result["skipped"] if n in CHATCORE_TASKS] + \
        ([f"not run: {', '.join(missing)}"] if missing else [])
    return f"ChatCORE: n/a (partial: {ran} of {len(CHATCORE_TASKS)} tasks ran; {'; '.join(notes)})"


def write_chat_results(result: dict, out_dir, source: str, model_tag: str, step: int) -> Path:
    """<out_dir>/<source>_<tag>_<step:06d>.json and its .csv twin (Task,Accuracy,Centered; skipped
    tasks with empty cells; last row ChatCORE, or `ChatCORE (partial)` with an empty value), both
    atomic; the JSON lists the tasks asked for but not reached (`not_run`). Returns the JSON path."""
    stem = Path(out_dir) / f"{source}_{model_tag}_{step:06d}"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Task", "Accuracy", "Centered"])
    for name, t in result["tasks"].items():
        writer.writerow([name, f"{t['accuracy']:.6f}", f"{t['centered']:.6f}"])
    for name in result["skipped"]:
        writer.writerow([name, "", ""])
    chatcore = result["chatcore"]
    writer.writerow(["ChatCORE (partial)" if result["partial"] else "ChatCORE", "",
                     "" if chatcore is None else f"{chatcore:.6f}"])
    # names spelled out, never with_suffix: a grid cell's tag has a dot (d3_2.5e11), which with_suffix would cut
    json_path, csv_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".csv")
    asked = result.get("settings", {}).get("task_names", [])
    not_run = [n for n in asked if n not in result["tasks"] and n not in result["skipped"]]
    write_text_atomic(csv_path, buf.getvalue())
    write_json_atomic(json_path, {"model_tag": model_tag, "step": step, "source": source, "tasks": result["tasks"],
                                  "chatcore": chatcore, "partial": result["partial"], "skipped": result["skipped"],
                                  "not_run": not_run,  # asked for, not reached yet: a run stopped early
                                  "settings": result.get("settings", {})})
    return json_path

"""CORE tasks (as nanochat's nanochat/core_eval.py reads them): core.yaml entries, their rows, few-shot rendering and the scored spans.

Everything here is deterministic text and token work; scoring the spans is core_scoring's job.
"""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

TASK_TYPES = ("multiple_choice", "schema", "language_modeling")
REQUIRED_KEYS = ("label", "dataset_uri", "num_fewshot", "icl_task_type")
SUBSAMPLE_SEED = 1337
FEWSHOT_SEED = 1234


@dataclass(frozen=True)
class TaskSpec:
    label: str  # the report's name for this (task, shot count)
    data_path: Path
    num_fewshot: int
    task_type: str
    delimiter: str
    baseline: float  # random-guess accuracy in percent, from eval_meta_data.csv


@dataclass
class Example:
    """The prompts of one item and, per prompt, the scored span [start, end) in its tokens."""
    prompts: list[list[int]]
    starts: list[int]
    ends: list[int]
    gold: int  # index of the correct prompt (language_modeling has one prompt, gold 0)


def load_tasks(bundle_dir: Path) -> list[TaskSpec]:
    """One TaskSpec per (core.yaml entry, num_fewshot value), in the file's order."""
    import yaml

    config_path = bundle_dir / "core.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    entries = config.get("icl_tasks") if isinstance(config, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{config_path}: expected a top-level `icl_tasks` list")
    baselines = load_baselines(bundle_dir / "eval_meta_data.csv")
    specs = []
    for i, entry in enumerate(entries):
        where = f"{config_path}: icl_tasks entry {i}" + (f" ({entry.get('label')!r})" if isinstance(entry, dict) else "")
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping, got {entry!r}")
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        if entry["icl_task_type"] not in TASK_TYPES:
            raise ValueError(f"{where}: unknown icl_task_type {entry['icl_task_type']!r} "
                             f"(expected one of {', '.join(TASK_TYPES)})")
        label = str(entry["label"])
        if label not in baselines:
            raise ValueError(f"{where}: no `Random baseline` for {label!r} in {bundle_dir / 'eval_meta_data.csv'}")
        shots = entry["num_fewshot"] if isinstance(entry["num_fewshot"], list) else [entry["num_fewshot"]]
        for k in shots:
            # nanochat's entries carry one shot count each; several get their own labels so rows stay unique
            specs.append(TaskSpec(label=label if len(shots) == 1 else f"{label}_{k}shot",
                                  data_path=bundle_dir / "eval_data" / entry["dataset_uri"], num_fewshot=int(k),
                                  task_type=entry["icl_task_type"],
                                  delimiter=entry.get("continuation_delimiter", " "), baseline=baselines[label]))
    return specs


def load_baselines(path: Path) -> dict[str, float]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the CORE bundle needs it for the random baselines")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"Eval Task", "Random baseline"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns `Eval Task` and `Random baseline`, got {reader.fieldnames}")
        return {row["Eval Task"]: float(row["Random baseline"]) for row in reader}


def load_rows(path: Path, max_per_task: int) -> list[dict]:
    """The task's rows, shuffled with Random(1337) and cut to max_per_task when > 0."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {lineno} is not a JSON object")
            rows.append(row)
    random.Random(SUBSAMPLE_SEED).shuffle(rows)
    return rows[:max_per_task] if max_per_task > 0 else rows


def fewshot_indices(n_rows: int, idx: int, k: int) -> list[int]:
    if k <= 0:
        return []
    return random.Random(FEWSHOT_SEED + idx).sample([i for i in range(n_rows) if i != idx], k)


def render_prompts(spec: TaskSpec, rows: list[dict], idx: int) -> tuple[list[str], int]:
    """(prompt strings, gold index) for item idx: the few-shot lines, then the item."""
    d = spec.delimiter
    shots = [rows[i] for i in fewshot_indices(len(rows), idx, spec.num_fewshot)]
    item = rows[idx]
    if spec.task_type == "multiple_choice":
        prefix = "".join(f"{s['query']}{d}{s['choices'][s['gold']]}\n" for s in shots)
        return [f"{prefix}{item['query']}{d}{choice}" for choice in item["choices"]], item["gold"]
    if spec.task_type == "schema":
        prefix = "".join(f"{s['context_options'][s['gold']]}{d}{s['continuation']}\n" for s in shots)
        return [f"{prefix}{option}{d}{item['continuation']}" for option in item["context_options"]], item["gold"]
    prefix = "".join(f"{s['context'].strip()}{d}{s['continuation']}\n" for s in shots)
    without = f"{prefix}{item['context'].strip()}{d}"
    # without is stripped (a trailing space would tokenize apart from the continuation's first word)
    return [without.strip(), without + item["continuation"]], 0


def build_example(spec: TaskSpec, rows: list[dict], idx: int, tokenizer) -> Example:
    """Tokenize the item's prompts (BOS first) and locate the scored spans."""
    try:
        texts, gold = render_prompts(spec, rows, idx)
        tokens = tokenizer.encode(texts, prepend=tokenizer.get_bos_token_id())
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{spec.data_path}: row {idx} (after shuffling) lacks the fields of a "
                         f"{spec.task_type} task: {exc!r}") from exc
    if spec.task_type == "language_modeling":
        without, with_ = tokens
        return Example([with_], [len(without)], [len(with_)], 0)
    if spec.task_type == "multiple_choice":
        start = common_prefix_len(tokens)
        return Example(tokens, [start] * len(tokens), [len(t) for t in tokens], gold)
    suffix = common_suffix_len(tokens)
    return Example(tokens, [len(t) - suffix for t in tokens], [len(t) for t in tokens], gold)


def common_prefix_len(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != seqs[0][i] for s in seqs):
            return i
    return n


def common_suffix_len(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(1, n + 1):
        if any(s[-i] != seqs[0][-i] for s in seqs):
            return i - 1
    return n

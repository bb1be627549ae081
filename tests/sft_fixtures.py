"""Chat task data written in each task's original release format, small enough for tiny SFT runs.

SmolTalk as `{messages}` JSONL, MMLU as headerless CSV (auxiliary_train/ and data/test/), GSM8K as
`{question, answer}` JSONL with calculator annotations; and conversation JSONL files for the
identity data and positional files. Words come from train_fixtures' vocabulary so the tiny
tokenizer renders them in few tokens.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from train_fixtures import OBJECTS, PLACES, SUBJECTS, VERBS


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"


def conversation(rng: random.Random, tag: str) -> dict:
    return {"messages": [{"role": "user", "content": f"{tag} {sentence(rng)}?"},
                         {"role": "assistant", "content": f"{sentence(rng)} {rng.choice(PLACES)}."}]}


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_conversations(path: Path, n: int, seed: int, tag: str) -> Path:
    rng = random.Random(seed)
    return write_jsonl(path, [conversation(rng, f"{tag}{i}") for i in range(n)])


def _mmlu_csv(path: Path, n: int, rng: random.Random, tag: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{tag}{i} {rng.choice(SUBJECTS)},{rng.choice(OBJECTS)},{rng.choice(PLACES)},{rng.choice(VERBS)},"
             f"{rng.choice(SUBJECTS)},{'ABCD'[rng.randrange(4)]}\n" for i in range(n)]
    path.write_text("".join(lines), encoding="utf-8")


def _gsm8k_rows(n: int, rng: random.Random, tag: str) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        rows.append({"question": f"{tag}{i} {a} plus {b}?", "answer": f"{a}+{b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}"})
    return rows


def write_task_data(root: Path, smoltalk=(20, 6), mmlu=(5, 6), gsm8k=(5, 4), seed: int = 0) -> Path:
    """(train, test) counts per task; a count of None leaves that split's file out."""
    rng = random.Random(seed)
    if smoltalk[0] is not None:
        write_jsonl(root / "smoltalk" / "smol_train.jsonl", [conversation(rng, f"st{i}") for i in range(smoltalk[0])])
    if smoltalk[1] is not None:
        write_jsonl(root / "smoltalk" / "smol_test.jsonl", [conversation(rng, f"sv{i}") for i in range(smoltalk[1])])
    if mmlu[0] is not None:
        _mmlu_csv(root / "mmlu" / "data" / "auxiliary_train" / "race.csv", mmlu[0], rng, "ma")
    if mmlu[1] is not None:
        _mmlu_csv(root / "mmlu" / "data" / "test" / "virology_test.csv", mmlu[1], rng, "mt")
    if gsm8k[0] is not None:
        write_jsonl(root / "gsm8k" / "main" / "train.jsonl", _gsm8k_rows(gsm8k[0], rng, "ga"))
    if gsm8k[1] is not None:
        write_jsonl(root / "gsm8k" / "main" / "test.jsonl", _gsm8k_rows(gsm8k[1], rng, "gt"))
    return root

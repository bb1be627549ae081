"""Arithmetic: short word problems over small integers, generated offline (the RL task when GSM8K cannot be had).

A template family of our own (adding, taking away, groups of, sharing equally, and a two-step
"groups of, then more"), filled from a seeded random stream, so a (seed, split) pair always gives
the same problems. Each reference solution is written as GSM8K's are: the working with calculator
annotations `<<3*4=12>>` and the final answer as `#### N`; rows therefore go through the same
conversion as GSM8K's (annotations become python tool calls and their outputs) and the same grading
(the number after the last `#### `): worked_answer.py. So one task serves SFT rows (the calculator
calls are supervised), RL rewards (task.evaluate) and chat_eval's `-a Arithmetic` (the test split).

Train and test are disjoint: a problem belongs to the test split when the first byte of the SHA-256
of its question is divisible by TEST_BUCKETS, whatever the seed.
"""
from __future__ import annotations

import hashlib
import random

from nanochat_core.tasks.worked_answer import WorkedAnswerTask

NAMES = ["Ann", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ivy", "Jack"]
ITEMS = ["apples", "books", "coins", "pens", "stickers", "marbles", "cards", "shells"]
TEST_BUCKETS = 10  # about one problem in ten is a test problem
SIZES = {"train": 5000, "test": 500}
MAX_MISSES = 20_000


def _add(rng, name, item, top):
    a, b = rng.randint(1, top), rng.randint(1, top)
    question = f"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?"
    return question, f"{name} has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} {item}.", a + b


def _take(rng, name, item, top):
    a = rng.randint(2, 2 * top)
    b = rng.randint(1, a - 1)
    question = f"{name} has {a} {item} and gives {b} away. How many {item} are left?"
    return question, f"{name} has {a} - {b} = <<{a}-{b}={a - b}>>{a - b} {item} left.", a - b


def _groups(rng, name, item, top):
    a, b = rng.randint(2, top), rng.randint(2, top)
    question = f"{name} has {a} bags with {b} {item} in each bag. How many {item} is that?"
    return question, f"That is {a} * {b} = <<{a}*{b}={a * b}>>{a * b} {item}.", a * b


def _share(rng, name, item, top):
    each, friends = rng.randint(1, top), rng.randint(2, top)
    total = each * friends
    question = f"{name} shares {total} {item} equally among {friends} friends. How many {item} does each friend get?"
    # floor division: the calculator gives `/` as a float (12 / 4 = 3.0), which would not match the written answer
    return question, f"Each friend gets {total} // {friends} = <<{total}//{friends}={each}>>{each} {item}.", each


def _groups_then_more(rng, name, item, top):
    a, b, c = rng.randint(2, top), rng.randint(2, top), rng.randint(1, top)
    question = f"{name} has {a} boxes of {b} {item} and finds {c} more. How many {item} does {name} have?"
    solution = (f"The boxes hold {a} * {b} = <<{a}*{b}={a * b}>>{a * b} {item}. "
                f"With the {c} found: {a * b} + {c} = <<{a * b}+{c}={a * b + c}>>{a * b + c} {item}.")
    return question, solution, a * b + c


TEMPLATES = (_add, _take, _groups, _share, _groups_then_more)


def is_test_question(question: str) -> bool:
    return hashlib.sha256(question.encode("utf-8")).digest()[0] % TEST_BUCKETS == 0


def generate_problems(split: str, seed: int, size: int, max_operand: int) -> list[tuple[str, str]]:
    """`size` distinct (question, answer) rows of `split`; the answer ends with `#### N`."""
    rng = random.Random(seed)
    want_test = split == "test"
    rows, seen = [], set()
    misses = 0  # draws in a row that gave nothing new: many means the distinct problems have run out
    while len(rows) < size:
        if misses == MAX_MISSES:
            raise ValueError(f"arithmetic: only {len(rows)} distinct {split} problems with max_operand "
                             f"{max_operand}; ask for fewer or raise max_operand")
        template = TEMPLATES[rng.randrange(len(TEMPLATES))]
        question, working, answer = template(rng, rng.choice(NAMES), rng.choice(ITEMS), max_operand)
        if question in seen or is_test_question(question) != want_test:
            misses += 1
            continue
        misses = 0
        seen.add(question)
        rows.append((question, f"{working}\n#### {answer}"))
    return rows


class Arithmetic(WorkedAnswerTask):
    name = "Arithmetic"

    def __init__(self, split: str, seed: int = 0, size: int | None = None, max_operand: int = 12, **slice_args):
        super().__init__(**slice_args)
        if split not in SIZES:
            raise ValueError(f"Arithmetic split must be 'train' or 'test', got {split!r}")
        if max_operand < 2:
            raise ValueError(f"Arithmetic max_operand must be at least 2, got {max_operand}")
        self.split, self.seed, self.max_operand = split, seed, max_operand
        self.items = generate_problems(split, seed, SIZES[split] if size is None else size, max_operand)

    def describe(self) -> dict:
        """What a checkpoint records about the task (and what a resume checks is unchanged)."""
        return {"name": self.name, "split": self.split, "seed": self.seed, "max_operand": self.max_operand,
                "generated": len(self.items)}

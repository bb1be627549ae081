"""Several tasks as one deterministically shuffled sequence of conversations (the SFT mixture).

A task listed twice is seen twice (that is how epochs of a source are expressed, as nanochat does).
"""
from __future__ import annotations

import random


class TaskMixture:
    def __init__(self, tasks: list, seed: int = 42):
        self.tasks = tasks
        self.index = [(t, i) for t, task in enumerate(tasks) for i in range(len(task))]
        random.Random(seed).shuffle(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        t, j = self.index[i]
        return self.tasks[t][j]

"""What chat_sft trains and validates on: nanochat's SFT mixture plus the user's own JSONL files (scripts/chat_sft.py).

Training: SmolTalk train, MMLU auxiliary_train x --mmlu-epochs, GSM8K train x --gsm8k-epochs, the
identity conversations (gen_synthetic_data's output) twice, then each positional JSONL once, all
shuffled together with one seed. Ours, off by default: the generated arithmetic task's train split x
--arithmetic-epochs (the offline stand-in for GSM8K before chat_rl --task arithmetic).
Validation: SmolTalk test, MMLU test (first 5,200), GSM8K test
(first 420), nanochat's slices.

A task source whose data is neither on disk nor on the Hub (TaskDataMissing), or an identity file
that does not exist, is reported and left out; a file that exists but is malformed stops the run
(with file and line), and so does a positional JSONL that is missing: the user named it.

When no validation split is available at all (e.g. offline, training on JSONL files only), the
last 2% of each training source with at least 10 conversations is held out of training and
becomes the validation set, so val bpb still measures something unseen. If even that leaves
nothing, val bpb is skipped (`val` is None) and the report says so.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from nanochat_core.tasks.arithmetic import Arithmetic
from nanochat_core.tasks.customjson import CustomJSON
from nanochat_core.tasks.gsm8k import GSM8K
from nanochat_core.tasks.mixture import TaskMixture
from nanochat_core.tasks.mmlu import MMLU
from nanochat_core.tasks.smoltalk import SmolTalk
from nanochat_core.tasks.task_data import TaskDataMissing

IDENTITY_EPOCHS = 2
VAL_STOPS = {"MMLU test": 5200, "GSM8K test": 420}  # nanochat's validation slices
HOLDOUT_FRACTION = 0.02
HOLDOUT_MIN_SOURCE = 10  # smaller sources are all kept for training


class Subset:
    """Some items of a task, by index, without copying (held-out or kept conversations)."""

    def __init__(self, task, indices: range):
        self.task, self.indices = task, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.task[self.indices[i]]


@dataclasses.dataclass
class Source:
    name: str
    task: object
    epochs: int = 1

    def row(self) -> dict:
        return {"name": self.name, "conversations": len(self.task), "epochs": self.epochs}


@dataclasses.dataclass
class SFTData:
    train: TaskMixture
    val: TaskMixture | None
    sources: list[Source]
    left_out: list[dict]  # {"name", "reason"}: training sources that are absent
    val_sources: list[Source]
    val_left_out: list[dict]
    val_note: str  # how the validation set was made, or why there is none
    seed: int

    def report_lines(self) -> list[str]:
        lines = [f"SFT mixture: {len(self.train):,} conversations, shuffled with seed {self.seed}"]
        lines += [_source_line(s) for s in self.sources]
        lines += [f"  left out: {m['name']}: {m['reason']}" for m in self.left_out]
        n_val = len(self.val) if self.val is not None else 0
        lines.append(f"SFT validation: {n_val:,} conversations ({self.val_note})")
        lines += [_source_line(s) for s in self.val_sources]
        lines += [f"  left out: {m['name']}: {m['reason']}" for m in self.val_left_out]
        return lines

    def meta(self) -> dict:
        """What a checkpoint records about its data (and what a resume checks is unchanged)."""
        return {"seed": self.seed, "train_conversations": len(self.train),
                "sources": [s.row() for s in self.sources], "left_out": self.left_out,
                "val_conversations": len(self.val) if self.val is not None else 0,
                "val_sources": [s.row() for s in self.val_sources], "val_left_out": self.val_left_out,
                "val_note": self.val_note}


def _source_line(s: Source) -> str:
    n = len(s.task)
    if s.epochs == 1:
        return f"  {s.name}: {n:,} conversations"
    return f"  {s.name}: {n:,} conversations x {s.epochs} epochs = {n * s.epochs:,}"


def _try(name: str, build, left_out: list[dict]):
    """build(), or None with the reason recorded when its data is absent."""
    try:
        return build()
    except (TaskDataMissing, FileNotFoundError) as e:
        left_out.append({"name": name, "reason": str(e)})
        return None


def build_sft_data(task_data: Path, identity: Path | None, jsonl_files: list, mmlu_epochs: int = 3,
                   gsm8k_epochs: int = 4, seed: int = 42, arithmetic_epochs: int = 0) -> SFTData:
    """Load every source; raise ValueError when nothing at all is left to train on."""
    left_out: list[dict] = []
    candidates = [("SmolTalk train", lambda: SmolTalk("train", task_data), 1),
                  ("MMLU auxiliary_train", lambda: MMLU("auxiliary_train", task_data), mmlu_epochs),
                  ("GSM8K train", lambda: GSM8K("train", task_data), gsm8k_epochs)]
    if arithmetic_epochs > 0:  # ours, off by default: nanochat's mixture has no such source
        candidates.append(("Arithmetic train", lambda: Arithmetic("train"), arithmetic_epochs))
    if identity is not None:
        candidates.append((f"identity {identity}", lambda: CustomJSON(identity), IDENTITY_EPOCHS))
    sources = []
    for name, build, epochs in candidates:
        if epochs <= 0:
            left_out.append({"name": name, "reason": "0 epochs asked for"})
        elif (task := _try(name, build, left_out)) is not None:
            sources.append(Source(name, task, epochs))
    for path in jsonl_files:  # named by the user: missing or malformed stops the run
        sources.append(Source(f"CustomJSON {path}", CustomJSON(path), 1))
    for empty in [s for s in sources if not len(s.task)]:
        sources.remove(empty)
        left_out.append({"name": empty.name, "reason": "no conversations"})

    val_left_out: list[dict] = []
    val_candidates = [("SmolTalk test", lambda: SmolTalk("test", task_data)),
                      ("MMLU test", lambda: MMLU("test", task_data, stop=VAL_STOPS["MMLU test"])),
                      ("GSM8K test", lambda: GSM8K("test", task_data, stop=VAL_STOPS["GSM8K test"]))]
    val_sources = [Source(name, task) for name, build in val_candidates
                   if (task := _try(name, build, val_left_out)) is not None and len(task)]
    if val_sources:
        val_note = "the test splits"
    else:
        sources, val_sources = _hold_out(sources)
        val_note = (f"no test split available: held out the last {HOLDOUT_FRACTION:.0%} of each training source "
                    f"with >= {HOLDOUT_MIN_SOURCE} conversations" if val_sources else
                    "no test split available and no training source large enough to hold some out: val bpb is skipped")
    if not sources:
        reasons = "; ".join(f"{m['name']}: {m['reason']}" for m in left_out)
        raise ValueError(f"no SFT data to train on ({reasons}); pass JSONL files of conversations, "
                         "or point --task-data at the task releases")
    train = TaskMixture([s.task for s in sources for _ in range(s.epochs)], seed=seed)
    val = TaskMixture([s.task for s in val_sources], seed=seed) if val_sources else None
    return SFTData(train, val, sources, left_out, val_sources, val_left_out, val_note, seed)


def _hold_out(sources: list[Source]) -> tuple[list[Source], list[Source]]:
    """Split the last HOLDOUT_FRACTION of each large enough source off into validation (all its epochs)."""
    kept, held = [], []
    for s in sources:
        n = len(s.task)
        k = max(1, int(n * HOLDOUT_FRACTION)) if n >= HOLDOUT_MIN_SOURCE else 0
        if k == 0:
            kept.append(s)
            continue
        kept.append(Source(s.name, Subset(s.task, range(n - k)), s.epochs))
        held.append(Source(f"{s.name} (held out)", Subset(s.task, range(n - k, n))))
    return kept, held

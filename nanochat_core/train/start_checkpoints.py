"""The checkpoints a fine-tuning trainer reads: its parent's (SFT's base model, RL's SFT model) and,
on a resume, its own (which must come from the same run: the same data, horizon and sharding)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from nanochat_core.model import checkpoint as ckpt


@dataclasses.dataclass(frozen=True)
class ParentCheckpoint:
    """The checkpoint a run starts from: --model-tag (default: the largest depth's) at --model-step
    (default: the last) under `root` (None: base_checkpoints)."""
    tag: str
    folder: Path
    step: int

    @classmethod
    def find(cls, model_tag: str | None, model_step: int | None, root: Path | None = None) -> "ParentCheckpoint":
        tag = model_tag or ckpt.find_largest_model_tag(root)
        folder = ckpt.checkpoint_dir(tag, root)
        step = model_step if model_step is not None and model_step >= 0 else ckpt.find_last_step(folder)
        return cls(tag, folder, step)

    @property
    def meta_path(self) -> Path:
        return ckpt.meta_path(self.folder, self.step)

    def meta(self) -> dict:
        return ckpt.load_meta(self.folder, self.step)

    def load(self, device, load_optimizer: bool = False, rank: int = 0) -> tuple[dict, dict | None, dict]:
        """(model state, optimizer state of `rank` or None, meta)."""
        return ckpt.load_checkpoint(self.folder, self.step, device=device, load_optimizer=load_optimizer, rank=rank)


def load_own_checkpoint(ckpt_dir: Path, step: int, device, rank: int, expected: dict,
                        what_else: str) -> tuple[dict, dict, dict]:
    """(model state, this rank's optimizer state, meta) of the run's own checkpoint at --resume-from-step
    `step`, refused unless its meta has every `expected` value ("a.b" looks up meta["a"]["b"]):
    resuming with other data or geometry would silently train on something else. `what_else` names,
    beside flags and number of processes, what must be the original run's ("data", "task")."""
    model_state, optim_state, meta = ckpt.load_checkpoint(ckpt_dir, step, device=device, load_optimizer=True,
                                                          rank=rank)
    where = ckpt.meta_path(ckpt_dir, meta["step"])
    for key, value in expected.items():
        outer, _, inner = key.partition(".")
        saved = meta.get(outer, {}).get(inner) if inner else meta.get(key)
        if saved != value:
            raise ValueError(f"--resume-from-step {step}: {where} has a different {key} than this run "
                             f"({saved!r} vs {value!r}); resume with the original run's flags, {what_else} "
                             "and number of processes")
    return model_state, optim_state, meta


def train_mode_model(model_state: dict, meta: dict, device):
    """The checkpoint's GPT on `device`, in train mode, to fine-tune."""
    model = ckpt.build_model(model_state, meta, device)
    model.train()
    return model

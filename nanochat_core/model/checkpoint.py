"""Checkpoints in nanochat's layout, so its files and ours are interchangeable.

    <checkpoints root>/<tag>/model_{step:06d}.pt          model state dict (rank 0)
                           optim_{step:06d}_rank{r}.pt    optimizer state, one per rank (sharded)
                           meta_{step:06d}.json           step, configs, loader and loop state

Every file is written under a temporary name and renamed; the meta file is written last, so a
checkpoint counts as complete only once its meta exists (an interrupted save is ignored).
The root is a parameter so SFT (chatsft_checkpoints) reuses the same code. Paths, the last step and
the meta are in checkpoint_layout.py (no torch).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from nanochat_core.common import settings
from nanochat_core.common.atomic import save_torch_atomic, write_json_atomic
# The torch-free half (paths, the last step, the meta), here too so that loaders need one module.
from nanochat_core.model.checkpoint_layout import (checkpoint_dir, find_largest_model_tag, find_last_step,  # noqa: F401
                                                   load_meta, meta_path, model_path, optim_path, update_meta)

# nanochat leaves the first steps (compilation, warm-up) out of the "total training time" a
# checkpoint's meta records; the report card needs the same count to turn that time into a rate.
UNTIMED_STEPS = 10


def save_checkpoint(ckpt_dir: Path, step: int, model_state: dict | None, optim_state: dict | None,
                    meta: dict | None, rank: int = 0) -> None:
    """Write one checkpoint. Call on every rank: each writes its optimizer shard, rank 0 the
    model and (after a barrier, so all shards exist first) the meta that completes it."""
    ckpt_dir = Path(ckpt_dir)
    if optim_state is not None:
        save_torch_atomic(optim_state, optim_path(ckpt_dir, step, rank))
    if rank == 0 and model_state is not None:
        save_torch_atomic(model_state, model_path(ckpt_dir, step))
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    if rank == 0 and meta is not None:
        write_json_atomic(meta_path(ckpt_dir, step), meta)


def check_shapes(state: dict, model_config: dict, path: Path) -> None:
    """Compare a state dict with the model its meta describes (a meta-device model: no memory);
    the error names the file and the key."""
    from nanochat_core.model.gpt import GPT, GPTConfig, check_state_dict

    with torch.device("meta"):
        expected = GPT(GPTConfig(**model_config))
    check_state_dict(expected, state, strict=True, source=str(path))


def load_checkpoint(ckpt_dir: Path, step: int | None = None, device="cpu", load_optimizer: bool = False,
                    rank: int = 0) -> tuple[dict, dict | None, dict]:
    """(model state, optimizer state of `rank` or None, meta); `step` None = the latest."""
    from nanochat_core.model.gpt import clean_state_dict

    ckpt_dir = Path(ckpt_dir)
    if step is None or step < 0:
        step = find_last_step(ckpt_dir)
    meta = load_meta(ckpt_dir, step)
    mpath = model_path(ckpt_dir, step)
    if not mpath.is_file():
        raise FileNotFoundError(f"checkpoint at step {step} has no model file: {mpath} is missing")
    model_state = clean_state_dict(torch.load(mpath, map_location=device, weights_only=True))
    check_shapes(model_state, meta["model_config"], mpath)
    optim_state = None
    if load_optimizer:
        opath = optim_path(ckpt_dir, step, rank)
        if not opath.is_file():
            raise FileNotFoundError(f"no optimizer state for rank {rank} at step {step}: {opath} is missing "
                                    "(resume with the same number of processes that saved it)")
        optim_state = torch.load(opath, map_location=device, weights_only=True)
    return model_state, optim_state, meta


def build_model(model_state: dict, meta: dict, device) -> torch.nn.Module:
    """A GPT with the checkpoint's weights: built on meta, materialized on `device`, loaded strictly."""
    from nanochat_core.model.gpt import GPT, GPTConfig

    with torch.device("meta"):
        model = GPT(GPTConfig(**meta["model_config"]))
    model.to_empty_on(device)
    # No init_weights: the strict load overwrites every parameter and refills the rotary buffers.
    model.load_state_dict(model_state, strict=True)
    return model


def load_problem(ckpt_dir: Path, step: int) -> str | None:
    """Why the checkpoint at `step` does not load into a model, or None when it does."""
    try:
        build_model(*load_checkpoint(ckpt_dir, step)[::2], device="cpu")
        return None
    except Exception as e:  # any failure to load is the answer
        return f"{model_path(ckpt_dir, step)} (step {step}) does not load: {type(e).__name__}: {e}"


def load_model(model_tag: str | None = None, step: int | None = None, device="cpu",
               root: Path | None = None) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, meta) from <root>/<tag>; tag None = the largest depth's tag."""
    root = Path(root if root is not None else settings.base_checkpoints_dir())
    tag = model_tag or find_largest_model_tag(root)
    model_state, _, meta = load_checkpoint(root / tag, step, device=device)
    model = build_model(model_state, meta, device)
    model.eval()
    return model, meta

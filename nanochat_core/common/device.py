"""Device, compute dtype and torch.distributed set-up: one place decides them for every command."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def autodetect_device_type() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device_type(requested: str = "auto") -> str:
    """Map `--device-type` ('' or 'auto' means detect) to cuda | mps | cpu."""
    if requested in ("", "auto", None):
        return autodetect_device_type()
    if requested not in ("cuda", "mps", "cpu"):
        raise ValueError(f"--device-type must be cuda, mps, cpu or auto, got {requested!r}")
    return requested


def compute_dtype(device_type: str) -> torch.dtype:
    """The one global compute dtype: bf16 on CUDA SM80+, fp32 elsewhere; NANOCHAT_DTYPE overrides.

    fp32 on CPU because bf16 matrix math there is ~100x slower.
    """
    override = os.environ.get("NANOCHAT_DTYPE", "").strip()
    if override:
        if override not in _DTYPES:
            raise ValueError(f"NANOCHAT_DTYPE must be one of {', '.join(_DTYPES)}, got {override!r}")
        return _DTYPES[override]
    if device_type == "cuda" and torch.cuda.get_device_capability()[0] >= 8:
        return torch.bfloat16
    return torch.float32


@dataclass(frozen=True)
class DistInfo:
    is_distributed: bool
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_master(self) -> bool:
        return self.rank == 0


def is_distributed_launch() -> bool:
    return all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun process group when launched by torchrun (nccl on CUDA, gloo on CPU)."""
    if not is_distributed_launch():
        device = torch.device("cuda", 0) if device_type == "cuda" else torch.device(device_type)
        return DistInfo(False, 0, 0, 1, device)
    rank, local_rank, world = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    if device_type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device(device_type)
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(True, rank, local_rank, world, device)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def print0(*args, **kwargs) -> None:
    """Print on global rank 0 only, so multi-process logs read like single-process ones."""
    if int(os.environ.get("RANK", 0)) == 0:
        print(*args, **kwargs, flush=True)

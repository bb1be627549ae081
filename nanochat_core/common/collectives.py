"""Tiny cross-rank agreements the training loop and the evaluations need; each is a no-op in a single process."""
from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes): (0, 1) outside torch.distributed."""
    if not _active():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def sum_over_ranks(values: list[int], device) -> list[int]:
    """Element-wise sums over all ranks, in one collective (e.g. each rank's share of an evaluation's counts)."""
    if not _active():
        return list(values)
    t = torch.tensor(values, dtype=torch.int64, device=device)
    dist.all_reduce(t)
    return [int(v) for v in t.tolist()]


def broadcast_from_master(value: float, device) -> float:
    """Rank 0's value everywhere (e.g. one measured peak, so every rank reports the same MFU)."""
    if not _active():
        return value
    t = torch.tensor(value, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def min_over_ranks(value: int, device) -> int:
    """The smallest value of any rank (e.g. an auto batch size every rank can afford)."""
    if not _active():
        return value
    t = torch.tensor(value, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def any_rank(flag: bool, device) -> bool:
    """True if any rank says so (a signal may reach the ranks at different steps)."""
    if not _active():
        return flag
    t = torch.tensor(int(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    if _active():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def gather_from_ranks(obj) -> list:
    """Every rank's `obj` (picklable), in rank order; [obj] in a single process."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank; nothing in a single process."""
    if _active():
        dist.barrier()


@contextlib.contextmanager
def failing_together(device, elsewhere: str):
    """A ValueError in the block (a bad row, seen by one rank only) is raised on every rank, the others
    with the message `elsewhere`, so none is left waiting at the next collective."""
    error = None
    try:
        yield
    except ValueError as exc:
        error = exc
    if any_rank(error is not None, device):
        raise error or ValueError(elsewhere)

"""SFT data loader: rendered conversations packed into rows with best fit, padded, masked (as scripts/chat_sft.py).

Rank r of W renders conversations r, r+W, r+2W, ... of the mixture (wrapping around into the next
epoch) into a buffer of `buffer_size` conversations. Each row of T+1 tokens is filled like the
pretraining loader fills it (the longest conversation that fits whole, earliest among equals), but
when none fits the rest of the row is padded with BOS instead of cropping one, so every
conversation in a row is whole. Targets are -1 (ignored by the loss) wherever the rendered mask is
0: BOS, user turns, <|assistant_start|>, tool outputs, and the padding.

A conversation longer than a row can never be placed whole. nanochat's loader kept it in the
buffer forever, silently; here it is left out whenever read, and counted the first time (in epoch
1), so `too_long` is the number of distinct mixture entries of this rank that do not fit.

Resume state (JSON-serializable), yielded with every batch: the position after that batch.
    cursor, epoch     the next mixture index this rank reads, and its epoch (from 1)
    consumed          conversations this rank has taken (placed in a row, or left out as too long)
    too_long          mixture entries this rank left out because they do not fit a row (each counted once)
    buffer            mixture indices of the buffered conversations, in arrival order (re-rendered on resume)
    rank, world_size  whose position this is
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from nanochat_core.tokenizer.chat_render import render_conversation
from nanochat_core.data.best_fit import BestFitBuffer

# nanochat's SFT buffer: conversations are long, so fewer of them give the packer enough choice.
DEFAULT_BUFFER_SIZE = 100


def render_masked(tokenizer, conversation: dict) -> tuple[list[int], list[int]]:
    """(ids, mask) of the whole conversation: no truncation, the loader decides what fits."""
    return render_conversation(tokenizer, conversation, max_tokens=1 << 62)


def initial_state(rank: int = 0, world_size: int = 1) -> dict:
    """The state of a loader that has yielded nothing yet (resuming from it starts afresh)."""
    return {"cursor": rank, "epoch": 1, "consumed": 0, "too_long": 0, "buffer": [], "rank": rank,
            "world_size": world_size}


def sft_loader(tokenizer, conversations, B: int, T: int, device: str | torch.device = "cpu",
               resume_state_dict: dict | None = None, rank: int = 0, world_size: int = 1,
               buffer_size: int = DEFAULT_BUFFER_SIZE) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
    """Yield (inputs, targets, state) forever; inputs/targets are (B, T) int64 on `device`.

    `conversations`: anything with len() and [i] giving {"messages": [...]} (a TaskMixture).
    """
    if B < 1 or T < 1 or buffer_size < 1:
        raise ValueError(f"B, T and buffer_size must be >= 1 (got {B}, {T}, {buffer_size})")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    if len(conversations) <= rank:
        raise ValueError(f"{len(conversations)} conversation(s) cannot feed rank {rank} of {world_size}")
    state = initial_state(rank, world_size)
    if resume_state_dict is not None:
        state = _checked_state(resume_state_dict, len(conversations), rank, world_size)
    # Validation above runs at call time; the generator below starts at the first next().
    return _generate(tokenizer, conversations, B, T, torch.device(device), state, rank, world_size, buffer_size)


def _checked_state(state: dict, n: int, rank: int, world_size: int) -> dict:
    where = (state.get("rank"), state.get("world_size"))
    if where != (rank, world_size):
        raise ValueError(f"SFT loader state is rank {where[0]} of {where[1]}, this is rank {rank} of {world_size}: "
                         "resume with the number of processes that saved it")
    for key in ("cursor", "epoch", "consumed", "too_long"):
        if not isinstance(state.get(key), int) or state[key] < 0:
            raise ValueError(f"SFT loader state needs a non-negative int {key!r}, got {state.get(key)!r}")
    indices = state.get("buffer")
    if not isinstance(indices, list) or not all(isinstance(i, int) and 0 <= i < n for i in indices) \
            or state["cursor"] >= n:
        raise ValueError(f"SFT loader state names conversations beyond the mixture's {n}: the data changed")
    return {k: state[k] for k in ("cursor", "epoch", "consumed", "too_long")} | {"buffer": list(indices)}


def _generate(tokenizer, conversations, B, T, device, state, rank, world_size, buffer_size):
    n = len(conversations)
    cap = T + 1
    bos = tokenizer.get_bos_token_id()
    buf = BestFitBuffer()  # items: (mixture index, ids, mask)
    pos = {k: state[k] for k in ("cursor", "epoch", "consumed", "too_long")}
    skipped_in_a_row = 0  # n in a row: this rank's stride never meets a conversation that fits

    def render(index: int):
        try:
            return render_masked(tokenizer, conversations[index])
        except ValueError as e:
            raise ValueError(f"SFT conversation {index} of the mixture: {e}") from None

    def add(index: int, ids, mask) -> None:
        buf.add(len(ids), (index, ids, mask))

    for index in state["buffer"]:
        add(index, *render(index))

    def refill() -> None:
        nonlocal skipped_in_a_row
        index, first_reading = pos["cursor"], pos["epoch"] == 1
        pos["cursor"] += world_size
        if pos["cursor"] >= n:
            pos["cursor"] %= n
            pos["epoch"] += 1
        ids, mask = render(index)
        if len(ids) > cap:
            pos["too_long"] += first_reading
            pos["consumed"] += 1
            skipped_in_a_row += 1
            if skipped_in_a_row >= n:
                raise ValueError(f"every conversation of rank {rank} is longer than a row of {cap} tokens "
                                 "(--max-seq-len + 1): nothing to train on")
            return
        skipped_in_a_row = 0
        add(index, ids, mask)

    rows = np.empty((B, cap), dtype=np.int64)
    masks = np.empty((B, cap), dtype=bool)
    while True:
        for r in range(B):
            filled = 0
            while filled < cap:
                while len(buf) < buffer_size:
                    refill()
                item = buf.pop_longest_fitting(cap - filled)
                if item is None:
                    break
                _, ids, mask = item
                rows[r, filled : filled + len(ids)] = ids
                masks[r, filled : filled + len(ids)] = mask
                filled += len(ids)
                pos["consumed"] += 1
            rows[r, filled:] = bos  # padding: an ordinary token to attend to, never a target
            masks[r, filled:] = False
        inputs = torch.from_numpy(rows[:, :-1].copy())
        targets = torch.from_numpy(np.where(masks[:, 1:], rows[:, 1:], -1))
        state_dict = {**pos, "buffer": [item[0] for item in buf.in_arrival_order()],
                      "rank": rank, "world_size": world_size}
        if device.type != "cpu":
            inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        yield inputs, targets, state_dict

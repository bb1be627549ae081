"""SFT loader: best-fit packing with padding (against a plain reference), masks, too-long conversations, resume."""
from __future__ import annotations

import random

import pytest
import torch

from nanochat_core.data.sft_loader import render_masked, sft_loader
from nanochat_core.tokenizer.bpe import Tokenizer
from train_fixtures import take


@pytest.fixture(scope="module")
def tok():
    # vocab 265 = bytes + specials, no merges: one token per byte, so lengths are easy to craft.
    return Tokenizer.train_from_iterator(["byte level"], vocab_size=265)


def conversations(n: int, seed: int = 0, long_every: int = 0) -> list[dict]:
    """Distinct conversations (their user text starts with <i>) of varied lengths; every
    `long_every`-th one is far longer than any row used here."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        reply = "".join(rng.choice("abcdefgh ") for _ in range(rng.choice([1, 3, 6, 10, 18])))
        if long_every and i % long_every == long_every - 1:
            reply *= 40
        out.append({"messages": [{"role": "user", "content": f"<{i}>"}, {"role": "assistant", "content": reply}]})
    return out


def reference_batches(tok, convs, B, T, n, rank=0, world_size=1, buffer_size=100):
    """The packing the plain way: a list buffer, O(n) scans, pad when nothing fits."""
    renders = [render_masked(tok, c) for c in convs]
    cursor, buffer, out, bos = rank, [], [], tok.get_bos_token_id()
    for _ in range(n):
        rows, masks = [], []
        for _ in range(B):
            row, mask = [], []
            while len(row) < T + 1:
                while len(buffer) < buffer_size:
                    ids, m = renders[cursor]
                    cursor = (cursor + world_size) % len(convs)
                    if len(ids) <= T + 1:
                        buffer.append((ids, m))
                remaining = T + 1 - len(row)
                best, best_len = -1, 0
                for i, (ids, _) in enumerate(buffer):
                    if best_len < len(ids) <= remaining:
                        best, best_len = i, len(ids)
                if best < 0:
                    row += [bos] * remaining
                    mask += [0] * remaining
                    break
                ids, m = buffer.pop(best)
                row += ids
                mask += m
            rows.append(row)
            masks.append(mask)
        t, m = torch.tensor(rows), torch.tensor(masks)
        out.append((t[:, :-1], torch.where(m[:, 1:] == 1, t[:, 1:], -1)))
    return out


@pytest.mark.parametrize("B,T,buffer_size,world_size,rank,n_convs", [
    (2, 32, 100, 1, 0, 37), (3, 20, 5, 1, 0, 50), (2, 40, 7, 2, 1, 29), (1, 64, 3, 3, 2, 40), (4, 16, 1, 1, 0, 12)])
def test_matches_plain_reference(tok, B, T, buffer_size, world_size, rank, n_convs):
    convs = conversations(n_convs, long_every=9)
    got = take(sft_loader(tok, convs, B, T, rank=rank, world_size=world_size, buffer_size=buffer_size), 20)
    want = reference_batches(tok, convs, B, T, 20, rank, world_size, buffer_size)
    for (x, y, _), (wx, wy) in zip(got, want):
        assert torch.equal(x, wx) and torch.equal(y, wy)


def parse_row(tok, renders, x_row):
    """The whole conversations a row holds, then the BOS padding; fails if a conversation is cropped."""
    bos, T = tok.get_bos_token_id(), len(x_row)
    pos, placed = 0, []
    while pos < T:
        for i, (ids, _) in enumerate(renders):
            n = min(len(ids), T - pos)
            if x_row[pos : pos + n] == ids[:n] and len(ids) > 1 and (pos + len(ids) <= T + 1):
                placed.append(i)
                pos += len(ids)
                break
        else:
            assert set(x_row[pos:]) == {bos}, f"not a whole conversation nor padding at {pos}: {x_row[pos:]}"
            return placed, T + 1 - pos
    return placed, T + 1 - pos  # 1: a BOS pad hidden in the row's last token, 0: the row is full


def test_rows_hold_whole_conversations_and_only_assistant_tokens_are_targets(tok):
    convs = conversations(30, seed=3)
    renders = [render_masked(tok, c) for c in convs]
    bos = tok.get_bos_token_id()
    padded_rows = 0
    for x, y, _ in take(sft_loader(tok, convs, 3, 48, buffer_size=10), 12):
        for r in range(x.size(0)):
            placed, padding = parse_row(tok, renders, x[r].tolist())
            assert placed, "a row must hold at least one conversation"
            ids = [t for i in placed for t in renders[i][0]] + [bos] * padding
            mask = [m for i in placed for m in renders[i][1]] + [0] * padding
            assert len(ids) == 49
            padded_rows += padding > 0
            want = [t if m else -1 for t, m in zip(ids[1:], mask[1:])]
            assert y[r].tolist() == want
    assert padded_rows > 0  # the test exercised padding


def test_targets_are_the_assistant_text_tool_calls_and_end_token(tok):
    conv = {"messages": [
        {"role": "user", "content": "what is 2+2?"},
        {"role": "assistant", "content": [{"type": "text", "text": "so "},
                                          {"type": "python", "text": "2+2"},
                                          {"type": "python_output", "text": "4"},
                                          {"type": "text", "text": " it is 4"}]},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "bye"}]}
    ids, _ = render_masked(tok, conv)
    x, y, _ = next(sft_loader(tok, [conv], 1, len(ids) - 1))
    targets = [t for t in y[0].tolist() if t >= 0]
    assert tok.decode(targets) == "so <|python_start|>2+2<|python_end|> it is 4<|assistant_end|>bye<|assistant_end|>"
    assert x[0].tolist() == ids[:-1]  # exactly one row: nothing padded, nothing cropped


def test_too_long_conversations_are_counted_and_never_placed(tok):
    convs = conversations(24, seed=5, long_every=4)  # 6 of 24 do not fit a row of 41
    renders = [render_masked(tok, c) for c in convs]
    too_long = {i for i, (ids, _) in enumerate(renders) if len(ids) > 41}
    assert len(too_long) == 6
    it = sft_loader(tok, convs, 2, 40, buffer_size=4)
    seen = set()
    for x, _, state in take(it, 15):
        for r in range(x.size(0)):
            placed, _ = parse_row(tok, renders, x[r].tolist())
            seen.update(placed)
    assert not seen & too_long and seen
    reads = (state["epoch"] - 1) * len(convs) + state["cursor"]  # one rank: every index read in turn
    assert reads > len(convs)  # a second epoch read them again, and did not count them again
    assert state["too_long"] == len(too_long)
    first = next(sft_loader(tok, convs, 1, 40, buffer_size=4))[2]
    assert first["too_long"] == sum(1 for i in range(first["cursor"]) if i in too_long) > 0


def test_nothing_fits_is_an_error_not_a_hang(tok):
    it = sft_loader(tok, conversations(5, long_every=1), 2, 16)
    with pytest.raises(ValueError, match="longer than a row of 17 tokens"):
        next(it)


@pytest.mark.parametrize("buffer_size,world_size,rank", [(100, 1, 0), (3, 1, 0), (5, 2, 1)])
def test_exact_resume(tok, buffer_size, world_size, rank):
    convs = conversations(33, seed=7, long_every=8)
    full = take(sft_loader(tok, convs, 2, 30, rank=rank, world_size=world_size, buffer_size=buffer_size), 14)
    for cut in (0, 5, 9):
        resumed = take(sft_loader(tok, convs, 2, 30, resume_state_dict=full[cut][2], rank=rank,
                                  world_size=world_size, buffer_size=buffer_size), 14 - cut - 1)
        for (x, y, s), (wx, wy, ws) in zip(resumed, full[cut + 1:]):
            assert torch.equal(x, wx) and torch.equal(y, wy) and s == ws


def test_ranks_read_disjoint_conversations(tok):
    convs = conversations(40, seed=9)
    renders = [render_masked(tok, c) for c in convs]
    seen = []
    for rank in range(2):
        mine = set()
        for x, _, _ in take(sft_loader(tok, convs, 1, 30, rank=rank, world_size=2, buffer_size=4), 6):
            mine.update(parse_row(tok, renders, x[0].tolist())[0])
        assert mine and all(i % 2 == rank for i in mine)
        seen.append(mine)


def test_bad_resume_state_and_arguments(tok):
    convs = conversations(6)
    _, _, state = next(sft_loader(tok, convs, 1, 30, buffer_size=2))
    with pytest.raises(ValueError, match="rank 0 of 1, this is rank 1 of 2"):
        sft_loader(tok, convs, 1, 30, resume_state_dict=state, rank=1, world_size=2)
    with pytest.raises(ValueError, match="beyond the mixture's 3"):
        sft_loader(tok, convs[:3], 1, 30, resume_state_dict={**state, "buffer": [5]})
    with pytest.raises(ValueError, match="cannot feed rank 2"):
        sft_loader(tok, convs[:2], 1, 30, rank=2, world_size=3)

"""Small generation helper: prefill the prompt once into a KV cache, then decode one token per step.

temperature 0 = greedy; top_k keeps the k most likely tokens; sampling draws from a torch.Generator seeded
with `seed`, so a (model, prompt, seed) triple always gives the same text. Tool use (the calculator) sits on
top, in tools.py, through the `steer` hook: it may replace sampled tokens with forced ones.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from nanochat_core.model.kv_cache import KVCache


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None,
                generator: torch.Generator) -> torch.Tensor:
    """logits (B, V) -> next tokens (B,)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and 0 < top_k < logits.size(-1):
        vals, idx = torch.topk(logits, top_k, dim=-1)
        probs = torch.softmax(vals, dim=-1)
        choice = torch.multinomial(probs, 1, generator=generator)
        return idx.gather(-1, choice).squeeze(-1)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)


def _as_rows(tokens) -> list[list[int]]:
    if len(tokens) and isinstance(tokens[0], (list, tuple)):
        return [list(t) for t in tokens]
    return [list(tokens)]


@torch.inference_mode()
def generate(model, tokens: Sequence[int] | Sequence[Sequence[int]], max_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 42, stop_tokens: Sequence[int] = (),
             num_samples: int = 1, steer: Callable[[list[int]], list[int]] | None = None) -> Iterator[list[int]]:
    """Yield one column of next tokens (one per row) per step.

    `tokens` is one prompt (sampled num_samples times; prefilled once at batch 1) or a list of equal-length
    prompts (one row each). Stops after max_tokens steps or once every row has emitted a stop token; rows
    that already stopped keep yielding tokens until then, callers ignore them (generate_tokens does).
    `steer`, when given, sees each sampled column and returns the column actually yielded and fed back."""
    rows = _as_rows(tokens)
    if any(len(r) == 0 for r in rows):
        raise ValueError("every prompt needs at least one token (e.g. BOS)")
    if len({len(r) for r in rows}) != 1:
        raise ValueError("generate() batches equal-length prompts only; use generate_tokens() for ragged ones")
    if len(rows) > 1 and num_samples != 1:
        raise ValueError("num_samples > 1 needs a single prompt")
    if max_tokens <= 0:
        return
    device = model.get_device()
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    stops = set(int(t) for t in stop_tokens)

    prompt = torch.tensor(rows, dtype=torch.long, device=device)
    B = len(rows) * num_samples
    cache = KVCache.for_model(model, prompt.size(0), prompt.size(1) + max_tokens)
    logits = model(prompt, kv_cache=cache)[:, -1, :]
    if num_samples > 1:
        cache = cache.expand_batch(num_samples)
        logits = logits.expand(num_samples, -1)
    done = [False] * B
    for step in range(max_tokens):
        nxt = sample_next(logits, temperature, top_k, generator)
        column = nxt.tolist()
        if steer is not None:
            column = steer(column)
            nxt = torch.tensor(column, dtype=torch.long, device=device)
        yield column
        done = [d or (t in stops) for d, t in zip(done, column)]
        if all(done) or step == max_tokens - 1:
            return
        logits = model(nxt.view(B, 1), kv_cache=cache)[:, -1, :]


def generate_tokens(model, tokens, max_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                    seed: int = 42, stop_tokens: Sequence[int] = (), num_samples: int = 1) -> list[list[int]]:
    """Completions (prompt excluded, stop token excluded) as lists, one per row. Ragged prompt lists are
    generated in groups of equal length (each group seeded with `seed`), results in input order."""
    rows = _as_rows(tokens)
    stops = set(int(t) for t in stop_tokens)

    def completions(prompt, n_out: int, samples: int) -> list[list[int]]:
        outs: list[list[int]] = [[] for _ in range(n_out)]
        finished = [False] * n_out
        for column in generate(model, prompt, max_tokens, temperature, top_k, seed, stop_tokens, samples):
            for j, t in enumerate(column):
                if finished[j]:
                    continue
                if t in stops:
                    finished[j] = True
                else:
                    outs[j].append(t)
        return outs

    if len(rows) == 1:
        return completions(rows[0], num_samples, num_samples)
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_len.setdefault(len(r), []).append(i)
    results: dict[int, list[int]] = {}
    for idxs in by_len.values():
        for i, out in zip(idxs, completions([rows[i] for i in idxs], len(idxs), 1)):
            results[i] = out
    return [results[i] for i in range(len(rows))]

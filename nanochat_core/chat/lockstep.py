"""Many prompts of different lengths decoded in one batch, each row exactly as if it ran alone.

The rows advance in lockstep by absolute position: the common prefix length (the shortest prompt)
is prefilled for every row at once, then each step feeds every row the token at the same position,
its own prompt's next token while it is still reading its prompt, or the token it just emitted
once it is generating. Every row therefore sits at the same position as it would alone, with the
same rotary angles and the same causal/sliding-window attention over its own tokens: no padding,
no attention mask, no per-row positions, and the model and KVCache stay as they are. A short
prompt starts generating earlier and ends earlier; the batch runs until its last row has ended.

Each generating row keeps the one-at-a-time semantics of chat.tools.complete_rows: its own
calculator state machine (ToolRow: forced <|output_start|> value <|output_end|> tokens replace the
samples drawn at those steps), at most `max_tokens` emitted tokens, an end at <|assistant_end|> or
<|bos|>, and, when sampling, its own torch.Generator seeded as the one-at-a-time call seeds it
(drawn from only at that row's own steps), so a row's samples do not depend on its neighbours.

What can still differ from one-at-a-time decoding is floating point: a matmul over B rows may
round differently from the same matmul over one row, and the prompt tokens past the common prefix
go through one-token steps rather than the prefill. A near-tie in the logits could then flip a
greedy argmax; tests/test_lockstep.py and benchmarks/bench_generation.py compare the two paths.
"""
from __future__ import annotations

from typing import Sequence

import torch

from nanochat_core.chat.engine import sample_next
from nanochat_core.chat.tools import Completion, ToolRow, ToolTokens
from nanochat_core.model.kv_cache import KVCache

# Rows x (longest prompt + max new tokens) per batch. The KV cache holds that many positions per layer
# (a d20 in bf16: about 100 KB a position, so 3.4 GB), and the prefill's last-position logits are
# rows x vocab; a tiny demo model on CPU takes 200 Arithmetic problems (~25k positions) in one batch.
DEFAULT_BATCH_TOKENS = 32768


def batches_by_length(lengths: Sequence[int], max_tokens: int, batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches, shortest prompts first, each batch's rows x (its longest prompt +
    max_tokens) within batch_tokens (a row that alone exceeds it gets a batch of its own). Sorting
    keeps the lengths within a batch close, so few steps go to reading prompts past the shared prefix."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        # sorted: row i is the longest so far in `current`
        if current and (len(current) + 1) * (lengths[i] + max_tokens) > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _last_logits(model, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
    # the last position's logits only: a prefill of B rows never materialises B x T x vocab
    return model.logits(model.hidden_states(tokens, cache)[:, -1])


@torch.inference_mode()
def complete_lockstep(model, tokenizer, prompts: Sequence[Sequence[int]], max_tokens: int,
                      temperature: float = 0.0, top_k: int | None = None,
                      seeds: Sequence[int] | int = 42) -> list[Completion]:
    """One Completion per prompt, in order, decoded together in one batch (see the module doc).
    `seeds`: one per prompt, or one for all (each row's generator is seeded with it, as
    complete_rows(prompt, seed=...) seeds its own); unused when greedy."""
    rows = [list(p) for p in prompts]
    if not rows:
        return []
    if any(len(r) == 0 for r in rows):
        raise ValueError("every prompt needs at least one token (e.g. BOS)")
    seeds = [seeds] * len(rows) if isinstance(seeds, int) else list(seeds)
    if len(seeds) != len(rows):
        raise ValueError(f"{len(seeds)} seeds for {len(rows)} prompts")
    out = [Completion([], [], "length") for _ in rows]
    if max_tokens <= 0:
        return out
    ids = ToolTokens.of(tokenizer)
    device = model.get_device()
    B, lengths = len(rows), [len(r) for r in rows]
    shared = min(lengths)
    tools = [ToolRow(ids, tokenizer) for _ in rows]
    emitted = [0] * B
    generators = None
    if temperature != 0.0:
        generators = [torch.Generator(device=device) for _ in rows]
        for g, s in zip(generators, seeds):
            g.manual_seed(int(s))

    cache = KVCache.for_model(model, B, max(lengths) + max_tokens)
    logits = _last_logits(model, torch.tensor([r[:shared] for r in rows], dtype=torch.long, device=device), cache)
    pos = shared  # the position every row's next input goes to
    while True:
        # rows generating at this position: the logits in hand predict it for them
        active = {i for i in range(B) if pos >= lengths[i] and not tools[i].done and emitted[i] < max_tokens}
        if generators is None:
            picks = logits.argmax(dim=-1).tolist()
        else:
            picks = [0] * B
            for i in sorted(active):
                picks[i] = int(sample_next(logits[i:i + 1], temperature, top_k, generators[i]))
        inputs = [0] * B  # an ended row is fed 0: its logits are never read again
        for i in range(B):
            if pos < lengths[i]:
                inputs[i] = rows[i][pos]  # still reading its prompt: this step's logits are not used for it
            elif i in active:
                token, forced = tools[i].choose(picks[i])
                emitted[i] += 1
                if tools[i].done:
                    out[i].finish_reason = "stop"
                else:
                    out[i].tokens.append(token)
                    out[i].forced.append(forced)
                inputs[i] = token
        if all(t.done or n >= max_tokens for t, n in zip(tools, emitted)):
            return out  # every row ended: no forward for a next token nobody reads
        logits = _last_logits(model, torch.tensor(inputs, dtype=torch.long, device=device).view(B, 1), cache)
        pos += 1


def complete_many(model, tokenizer, prompts: Sequence[Sequence[int]], max_tokens: int, temperature: float = 0.0,
                  top_k: int | None = None, seeds: Sequence[int] | int = 42,
                  batch_tokens: int = DEFAULT_BATCH_TOKENS) -> list[Completion]:
    """complete_lockstep over batches of at most batch_tokens positions (batches_by_length); results
    in the prompts' order."""
    seeds = [seeds] * len(prompts) if isinstance(seeds, int) else list(seeds)
    out: list[Completion | None] = [None] * len(prompts)
    for batch in batches_by_length([len(p) for p in prompts], max_tokens, batch_tokens):
        done = complete_lockstep(model, tokenizer, [prompts[i] for i in batch], max_tokens, temperature, top_k,
                                 [seeds[i] for i in batch])
        for i, c in zip(batch, done):
            out[i] = c
    return out

"""Batched scoring of CORE prompts: cropping to the context, then many prompts per forward pass.

Each prompt row is scored on its own span (mean token loss, and whether greedy argmax reproduces
every span token), so rows from different examples share forward passes freely; the three
prediction rules then combine a row's numbers per example.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nanochat_core.evaluation.core_tasks import Example

WIDTH_STEP = 64


@dataclass
class Row:
    tokens: list[int]
    start: int
    end: int
    cropped: bool


def crop_example(ex: Example, context: int) -> list[Row] | None:
    """The example's prompts fitted to `context` tokens: a long prompt keeps its BOS, loses tokens right
    after it, and keeps the scored span whole. None when a span (plus the one token that predicts
    its first token) does not fit, or is empty, so the example cannot be scored."""
    rows = []
    for tokens, start, end in zip(ex.prompts, ex.starts, ex.ends):
        if end <= start or end - start + 1 > context:
            return None
        shift = len(tokens) - context
        if shift > 0:
            rows.append(Row([tokens[0]] + tokens[shift + 1:], start - shift, end - shift, True))
        else:
            rows.append(Row(tokens, start, end, False))
    return rows


@torch.inference_mode()
def score_rows(model, rows: list[Row], pad_id: int, device, batch_size: int) -> list[tuple[float, bool]]:
    """(mean span loss, greedy-exact) per row, `batch_size` rows per forward pass, padded right with pad_id
    (causal attention: padding after a row's tokens cannot change their logits).
    Rows are sorted by length first so each batch pads little; results come back in input order."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].tokens))
    out: list[tuple[float, bool] | None] = [None] * len(rows)
    for b in range(0, len(order), batch_size):
        chunk = [rows[i] for i in order[b:b + batch_size]]
        # widths rounded up to a multiple of WIDTH_STEP: few distinct shapes, so few cached attention masks
        width = -(-max(len(r.tokens) for r in chunk) // WIDTH_STEP) * WIDTH_STEP
        idx = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        targets = torch.full((len(chunk), width), -1, dtype=torch.long)  # -1: not in a scored span
        for j, r in enumerate(chunk):
            idx[j, :len(r.tokens)] = torch.tensor(r.tokens)
            # position p predicts token p+1: the span [start, end) is predicted from [start-1, end-1)
            targets[j, r.start - 1:r.end - 1] = idx[j, r.start:r.end]
        idx, targets = idx.to(device), targets.to(device)
        # Logits of the scored positions only: on CPU the full (rows, width, vocab) logits and their
        # softcap cost more than the transformer itself once a batch outgrows the caches.
        scored = targets != -1
        row_of = scored.nonzero()[:, 0]
        span_targets = targets[scored]
        span_logits = model.logits(model.hidden_states(idx)[scored])
        losses = F.cross_entropy(span_logits, span_targets, reduction="none")
        mean_loss = torch.zeros(len(chunk), device=device).index_add_(0, row_of, losses) / scored.sum(1)
        missed = torch.zeros(len(chunk), device=device).index_add_(
            0, row_of, (span_logits.argmax(-1) != span_targets).float())
        exact = missed == 0
        for j, i in enumerate(order[b:b + batch_size]):
            out[i] = (mean_loss[j].item(), bool(exact[j].item()))
    return out


def is_correct(task_type: str, gold: int, results: list[tuple[float, bool]]) -> bool:
    """language_modeling: every span token is the greedy prediction; otherwise the lowest mean loss wins."""
    if task_type == "language_modeling":
        return results[0][1]
    losses = [loss for loss, _ in results]
    return losses.index(min(losses)) == gold

"""The training loss head in one pass over chunks of rows: lm_head matmul, softcap, cross-entropy and,
while each chunk is still in cache, its gradient.

Why: the plain head writes the (tokens x vocab) logits and then reads and rewrites them about ten
times (the matmul's output, the softcap's divide, tanh and scale, log-softmax, and the same passes
back in the backward); at the d4 CPU recipe that tensor is 8192 x 4096 fp32 = 134 MB, so a step pays
for ~3 GB of memory traffic and ~20 dispatched ops outside the matmuls. Here each chunk of rows
(about CHUNK_ELEMENTS logits, a few MB) goes through softcap, logsumexp, the loss and the
softmax-minus-one-hot gradient (chained through the softcap) before the next chunk starts, and the
chunk's contributions to the gradients of the hidden states and of lm_head are formed right away;
backward then only scales them by the incoming gradient. The N x V logits never exist in memory.

The math is the plain head's, element for element (the same divide, tanh and scale), so losses agree
with it to float rounding (tests/test_softcap_loss.py). Targets of -1 are ignored, as F.cross_entropy's
ignore_index=-1: they add no loss and no gradient, and a mean divides by the count of the others.
"""
from __future__ import annotations

import torch

CHUNK_ELEMENTS = 2**19  # logits per chunk: 2 MB in fp32, so a chunk's passes stay in cache


class SoftcapCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int,
                softcap: float, reduction: str) -> torch.Tensor:
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        w = weight[:vocab_size].to(h.dtype)  # the real vocabulary only: padding rows get zero gradient
        n_rows = h.size(0)
        rows = max(1, CHUNK_ELEMENTS // vocab_size)
        valid = targets != -1
        # The gradient of the reduction per row: 1/count for a mean (a tensor: no host sync), 1 for a sum,
        # 0 where the target is ignored.
        row_scale = valid.float()
        if reduction == "mean":
            row_scale = row_scale / valid.sum()
        safe_targets = targets.clamp_min(0).unsqueeze(1)  # ignored rows gather column 0, then count 0
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if want_h else None
        grad_w = torch.zeros_like(weight) if want_w else None
        for start in range(0, n_rows, rows):
            stop = min(start + rows, n_rows)
            h_c = h[start:stop]
            t = (h_c @ w.mT).float().div_(softcap).tanh_()  # as GPT.logits: divide, tanh, scale
            s = t * softcap
            lse = torch.logsumexp(s, dim=1)
            picked = s.gather(1, safe_targets[start:stop]).squeeze(1)
            total += ((lse - picked) * valid[start:stop]).sum()
            if not (want_h or want_w):
                continue
            # d loss_row / d s = softmax(s) - onehot(target); through the softcap d s / d z = 1 - t^2.
            g = s.sub_(lse.unsqueeze(1)).exp_()
            g.scatter_add_(1, safe_targets[start:stop], torch.full_like(picked, -1.0).unsqueeze(1))
            g.mul_(row_scale[start:stop].unsqueeze(1))
            g.addcmul_(g * t, t, value=-1.0)
            g = g.to(h.dtype)
            if want_h:
                torch.mm(g, w, out=grad_h[start:stop])
            if want_w:
                grad_w[:vocab_size] += (g.mT @ h_c).to(grad_w.dtype)
        ctx.save_for_backward(grad_h, grad_w)
        return total / valid.sum() if reduction == "mean" else total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out.to(torch.float32)
        gh = grad_h * scale.to(grad_h.dtype) if grad_h is not None else None
        gw = grad_w * scale.to(grad_w.dtype) if grad_w is not None else None
        return gh, gw, None, None, None, None


def softcap_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int,
                          softcap: float, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of softcap * tanh((h @ weight[:vocab_size].T) / softcap) against targets (-1 = ignore).

    h: (N, d) in the compute dtype; weight: lm_head's (padded_vocab, d) master weight; targets: (N,).
    reduction: "mean" over the non-ignored rows, or "sum"."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"softcap_cross_entropy reduces by 'mean' or 'sum', got {reduction!r}")
    if h.dim() != 2 or targets.shape != h.shape[:1]:
        raise ValueError(f"expected h (N, d) and targets (N,), got {tuple(h.shape)} and {tuple(targets.shape)}")
    return SoftcapCrossEntropy.apply(h, weight, targets, vocab_size, softcap, reduction)

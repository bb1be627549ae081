"""RMSNorm, relu^2 and rotary embeddings with hand-written backward passes, for eager fp32 training (the CPU path).

Why: autograd differentiates torch's CPU rms_norm through its decomposition (pow, mean, add, rsqrt,
mul and their backward nodes, with dtype round trips: ~35 ops and as many full passes over the
activations per call), and relu(x).square() through PowBackward + threshold_backward. On the demo's
tiny cells every op is a fixed dispatch cost (the step is ~3,500 ops), and on the d4 recipe every
pass is a read and write of an 8-32 MB activation. The closed forms below need 4 ops (RMSNorm),
2 ops (relu^2) and 5 ops (rotary) in the backward and save only what the next layer keeps alive anyway
(the output) or the shared cos/sin tables.

Used only where they are exact to fp32 rounding and help: fp32 inputs that need a gradient, outside
torch.compile (which fuses the plain ops itself). Everywhere else the plain torch ops run.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class _RMSNorm(torch.autograd.Function):
    # y = x * rstd, rstd = 1/sqrt(mean(x^2) + eps);  dx = rstd * (g - y * mean(g * y))
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y, rstd = torch.ops.aten._fused_rms_norm(x, [x.size(-1)], None, None)  # one kernel, eps as F.rms_norm
        ctx.save_for_backward(y, rstd)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        y, rstd = ctx.saved_tensors
        m = (g * y).mean(dim=-1, keepdim=True)
        return torch.addcmul(g, y, m, value=-1.0).mul_(rstd)


class _ReluSquared(torch.autograd.Function):
    # y = relu(x)^2;  dx = 2 * relu(x) * g
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        r = torch.relu(x)
        ctx.save_for_backward(r)
        return r * r

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        (r,) = ctx.saved_tensors
        return (g * r).mul_(2.0)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split rotary: [x1*cos + x2*sin, x2*cos - x1*sin], written into one output (no cat)."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    out = torch.empty_like(x)
    y1, y2 = out[..., :d], out[..., d:]
    torch.mul(x1, cos, out=y1)
    y1.addcmul_(x2, sin)
    torch.mul(x2, cos, out=y2)
    y2.addcmul_(x1, sin, value=-1.0)
    return out


class _Rotary(torch.autograd.Function):
    # A rotation: its backward is the rotation by the opposite angle (sin -> -sin). Autograd's own backward
    # of the sliced formula zero-fills and scatters each slice's gradient (~15 ops, several full passes).
    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        cos, sin = ctx.saved_tensors
        return _rotate(g.contiguous(), cos, -sin), None, None


def _hand_written(x: torch.Tensor) -> bool:
    return (x.dtype == torch.float32 and x.requires_grad and torch.is_grad_enabled()
            and not torch.compiler.is_compiling())


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm over the last dim without a weight (F.rms_norm's default eps)."""
    return _RMSNorm.apply(x) if _hand_written(x) else F.rms_norm(x, (x.size(-1),))


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split rotary embedding of x (..., T, H, D) with cos/sin (1, T, 1, D/2) in x's dtype."""
    if _hand_written(x) and not (cos.requires_grad or sin.requires_grad):
        return _Rotary.apply(x, cos, sin)
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


def relu_squared(x: torch.Tensor) -> torch.Tensor:
    return _ReluSquared.apply(x) if _hand_written(x) else F.relu(x).square()

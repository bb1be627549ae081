"""Causal (optionally sliding-window) attention through the fastest kernel the machine has.

Backends:
  fa3   Flash Attention 3 from the `kernels` package (CUDA SM80-SM90, bf16/fp16 only): windows natively.
  flex  FlexAttention (torch.nn.attention.flex_attention) with a block mask built once per shape and cached:
        the sliding-window layers skip whole blocks outside the window instead of masking a T x T matrix.
  sdpa  scaled_dot_product_attention: is_causal=True (no mask, flash/efficient kernels) where the window covers
        the sequence; an explicit boolean mask only where a window cuts it and no other backend is chosen.
  reference  SDPA with an explicit boolean mask on every call: the yardstick the tests compare against.

Whatever the backend, a full window on a full sequence goes through SDPA with is_causal=True (FA3 excepted),
and a one-token decode step attends to the last window+1 cached keys through SDPA without a mask: both are
exact and mask-free. `resolve_backend` makes the automatic choice and says why; `attend` runs one call.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

BACKENDS = ("flex", "fa3", "sdpa")
CHOICES = ("auto",) + BACKENDS
REFERENCE = "reference"
# Flash Attention 3 builds on the Hugging Face kernel hub (the repositories nanochat loads): the Hopper build
# for SM90, the community build for Ampere/Ada.
FA3_KERNEL_SM90 = "varunneal/flash-attention-3"
FA3_KERNEL_SM8X = "kernels-community/flash-attn3"


@dataclass(frozen=True)
class AttentionChoice:
    backend: str  # one of BACKENDS (or REFERENCE)
    reason: str   # one line: why this backend, for the log

    def __str__(self) -> str:
        return f"{self.backend} ({self.reason})"


# ---------------------------------------------------------------------------------------------- availability
def flex_available() -> tuple[bool, str]:
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except ImportError as exc:
        return False, f"torch {torch.__version__} has no FlexAttention ({exc})"
    return True, "FlexAttention available"


_fa3_state: dict[int, tuple[object | None, str]] = {}  # CUDA device index -> (kernel module or None, why)


def fa3_kernel(device: torch.device) -> tuple[object | None, str]:
    """The FA3 interface module for this CUDA device, or None and the reason. Loaded once per process and device;
    offline (HF_HUB_OFFLINE=1) the `kernels` package uses what is already in the Hugging Face cache on disk."""
    if device.type != "cuda":
        return None, f"FA3 needs CUDA (device is {device.type})"
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index in _fa3_state:
        return _fa3_state[index]
    major, minor = torch.cuda.get_device_capability(index)
    if major not in (8, 9):
        result = (None, f"no FA3 build for SM{major}{minor} (SM80-SM90 only)")
    else:
        result = _load_fa3(FA3_KERNEL_SM90 if major == 9 else FA3_KERNEL_SM8X)
    _fa3_state[index] = result
    return result


def _load_fa3(repo: str) -> tuple[object | None, str]:
    try:
        import kernels
    except ImportError:
        return None, "the `kernels` package is not installed (pip install kernels)"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        try:
            module = kernels.get_kernel(repo)
        except (TypeError, ValueError):
            # newer `kernels` releases want an explicit version or revision
            module = kernels.get_kernel(repo, revision="main")
        return module.flash_attn_interface, f"FA3 from {repo}"
    except Exception as exc:  # offline without a cached copy, a build for another torch, ...: fall back, say why
        return None, f"FA3 from {repo} did not load: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"


def resolve_backend(choice: str, device: torch.device, dtype: torch.dtype, windowed: bool,
                    training: bool = True) -> AttentionChoice:
    """The backend for `choice` (auto | flex | fa3 | sdpa | reference) on this device and compute dtype.

    `windowed`: some layer's window is shorter than the sequence (an S in the pattern). A forced backend that
    cannot run here is a ValueError naming the flag and the reason, never a silent fallback."""
    device = torch.device(device)
    if choice not in CHOICES + (REFERENCE,):
        raise ValueError(f"--attention must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == REFERENCE:
        return AttentionChoice(REFERENCE, "SDPA with an explicit mask on every call (reference)")
    if choice == "sdpa":
        return AttentionChoice("sdpa", "--attention sdpa")
    if choice == "fa3":
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"--attention fa3: Flash Attention 3 runs in bf16/fp16, the compute dtype is {dtype}")
        module, why = fa3_kernel(device)
        if module is None:
            raise ValueError(f"--attention fa3: {why}")
        return AttentionChoice("fa3", f"--attention fa3: {why}")
    if choice == "flex":
        ok, why = flex_available()
        if not ok:
            raise ValueError(f"--attention flex: {why}")
        if training and device.type != "cuda":
            raise ValueError(f"--attention flex: FlexAttention has no backward on {device.type} in torch "
                             f"{torch.__version__}; training there needs --attention sdpa")
        return AttentionChoice("flex", "--attention flex")
    # auto
    if device.type == "cuda":
        if dtype in (torch.bfloat16, torch.float16):
            module, why = fa3_kernel(device)
            if module is not None:
                return AttentionChoice("fa3", f"auto: {why}")
        else:
            why = f"FA3 needs bf16/fp16, compute dtype is {dtype}"
        if not windowed:
            return AttentionChoice("sdpa", f"auto: no sliding window, SDPA is_causal uses the flash kernels ({why})")
        ok, flex_why = flex_available()
        if ok:
            return AttentionChoice("flex", f"auto: sliding windows through FlexAttention block masks ({why})")
        return AttentionChoice("sdpa", f"auto: {flex_why}; {why}")
    return AttentionChoice("sdpa", f"auto: on {device.type}, FlexAttention has no backward and FA3 needs CUDA")


# ---------------------------------------------------------------------------------------------- masks
def dense_mask(T: int, Tk: int, t0: int, window: int, device) -> torch.Tensor:
    """Boolean (T, Tk), True = attend: key j is visible to the query at position t0+i when j <= t0+i and
    t0+i - j <= window."""
    qpos = torch.arange(t0, t0 + T, device=device)[:, None]
    kpos = torch.arange(Tk, device=device)[None, :]
    return (kpos <= qpos) & (qpos - kpos <= window)


def sliding_window_block_mask(T: int, window: int, device):
    """FlexAttention block mask for causal attention with a left window, queries and keys both 0..T-1."""
    from torch.nn.attention.flex_attention import create_block_mask

    def visible(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx - kv_idx <= window)

    return create_block_mask(visible, B=None, H=None, Q_LEN=T, KV_LEN=T, device=str(device))


class MaskCache:
    """Dense masks (for SDPA) and block masks (for flex), built once per shape on first use and reused.

    Only training/prefill shapes (queries from position 0) are kept: decode shapes change every token.
    Under torch.compile a miss is built in-graph, so the compiled forward has no guards on a growing dict;
    GPT.set_attention fills the training shape's entries eagerly before compiling."""

    def __init__(self):
        self._dense: dict[tuple, torch.Tensor] = {}
        self._block: dict[tuple, object] = {}

    def clear(self) -> None:
        self._dense.clear()
        self._block.clear()

    def dense(self, T: int, Tk: int, t0: int, window: int, device) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return dense_mask(T, Tk, t0, window, device)
        key = (T, Tk, t0, window, torch.device(device))
        mask = self._dense.get(key)
        if mask is None:
            with torch.inference_mode(False):  # a cached mask must stay usable outside inference mode
                mask = dense_mask(T, Tk, t0, window, device)
            if t0 == 0:
                self._dense[key] = mask
        return mask

    def block(self, T: int, window: int, device):
        key = (T, window, torch.device(device))
        mask = self._block.get(key)
        if mask is None:
            if torch.compiler.is_compiling():
                return sliding_window_block_mask(T, window, device)
            with torch.inference_mode(False):
                mask = sliding_window_block_mask(T, window, device)
            self._block[key] = mask
        return mask


# ---------------------------------------------------------------------------------------------- kernels
_compiled_flex = None


def _flex(q, k, v, block_mask, gqa: bool):
    """flex_attention, compiled: eager flex materializes the full score matrix. Inside a compiled model the
    plain function is traced into the graph; on CPU (forward only) the eager path avoids a minute of compiling."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if torch.compiler.is_compiling():
        return flex_attention(q, k, v, block_mask=block_mask, enable_gqa=gqa)
    if q.device.type == "cpu":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
            return flex_attention(q, k, v, block_mask=block_mask, enable_gqa=gqa)
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex(q, k, v, block_mask=block_mask, enable_gqa=gqa)


def _fa3(q, k, v, window: int):
    """FA3 takes (B, T, H, D); ours are (B, H, T, D). window < 0 = unlimited left context."""
    module, why = fa3_kernel(q.device)
    if module is None:
        raise RuntimeError(f"attention backend fa3 chosen but unavailable: {why}")
    out = module.flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True,
                                 window_size=(window, 0))
    if isinstance(out, tuple):  # some builds also return the softmax log-sum-exp
        out = out[0]
    return out.transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, backend: str,
           masks: MaskCache) -> torch.Tensor:
    """Causal attention with a left window. q (B, H, T, D) holds the last T positions of the Tk keys in
    k, v (B, Hkv, Tk, D) (t0 = Tk - T: a KV cache's earlier positions come first). Returns (B, H, T, D)."""
    T, Tk = q.size(2), k.size(2)
    t0 = Tk - T
    gqa = k.size(1) != q.size(1)
    full = window >= Tk - 1  # the window reaches back to position 0 for every query
    if backend == REFERENCE:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=masks.dense(T, Tk, t0, window, q.device),
                                              enable_gqa=gqa)
    if T == 1:
        # decode: the query is the newest position; its window is the last window+1 keys, all visible
        start = max(0, Tk - 1 - window)
        return F.scaled_dot_product_attention(q, k[:, :, start:], v[:, :, start:], enable_gqa=gqa)
    if t0 == 0:
        if backend == "fa3":
            return _fa3(q, k, v, -1 if full else window)
        if full:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        if backend == "flex":
            return _flex(q, k, v, masks.block(T, window, q.device), gqa)
    # a window cutting the sequence under sdpa, or a chunk of queries after cached ones: explicit mask
    return F.scaled_dot_product_attention(q, k, v, attn_mask=masks.dense(T, Tk, t0, window, q.device),
                                          enable_gqa=gqa)

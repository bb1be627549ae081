"""The denominator of MFU: the peak FLOP/s of one device.

`--peak-flops` wins. On CUDA in bf16, a GPU whose exact model is in the table below gets its
datasheet dense bf16 tensor-core peak (MFU is then comparable with nanochat's, which assumes an
H100 SXM's 989 TFLOP/s). Anything else (CPU, another dtype, a GPU not in the table, said so) gets
the measured matmul peak of this machine (flops_probe), measured once and reused.
"""
from __future__ import annotations

import re

import torch

# Dense (no 2:4 sparsity) bf16 tensor-core peaks with fp32 accumulate, FLOP/s, from NVIDIA's
# datasheets, keyed by the exact model as torch.cuda.get_device_name spells it (normalized by
# gpu_model). Exact keys, never substrings: "L4" must not match an L40, nor "H100" an H100 PCIe,
# whose peaks differ by 1.5x-3x. A model not listed is measured instead of guessed.
GPU_BF16_DENSE_PEAKS = {
    "h100 80gb hbm3": 989.5e12,   # H100 SXM5 (datasheet: 1,979 with sparsity)
    "h100 pcie": 756.5e12,        # H100 PCIe 80 GB (1,513 with sparsity)
    "h100 nvl": 835.5e12,         # H100 NVL 94 GB (1,671 with sparsity)
    "h200": 989.5e12,             # H200 SXM 141 GB (1,979 with sparsity)
    "h200 nvl": 835.5e12,         # H200 NVL (1,671 with sparsity)
    "gh200 480gb": 989.5e12,      # Grace Hopper superchip: an H100 SXM-class GPU
    "a100 sxm4 40gb": 312e12,     # A100 40 and 80 GB, SXM and PCIe: the same tensor cores
    "a100 sxm4 80gb": 312e12,
    "a100 pcie 40gb": 312e12,
    "a100 80gb pcie": 312e12,
    "a800 sxm4 80gb": 312e12,
    "a10": 125e12,                # A10 (datasheet: 125 dense, 250 sparse)
    "l4": 121e12,                 # L4 (242 with sparsity)
    "l40": 181.05e12,             # L40 (362.1 with sparsity)
    "l40s": 362.05e12,            # L40S (733 with sparsity)
    "b200": 2250e12,              # B200 (HGX B200, per GPU)
    "geforce rtx 4090": 165.2e12,  # Ada whitepaper, bf16 with fp32 accumulate
    "geforce rtx 3090": 71e12,     # GA102 whitepaper, bf16 with fp32 accumulate
}


def gpu_model(device_name: str) -> str:
    """'NVIDIA A100-SXM4-80GB' -> 'a100 sxm4 80gb': lower case, vendor dropped, separators as one space."""
    words = re.split(r"[\s_\-]+", device_name.strip().lower())
    return " ".join(w for w in words if w and w != "nvidia")


def datasheet_peak(device_name: str) -> float | None:
    """The table's dense bf16 peak of this exact GPU model, or None when it is not in the table."""
    return GPU_BF16_DENSE_PEAKS.get(gpu_model(device_name))


def resolve_peak_flops(requested: float, device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """(peak FLOP/s of one device, where the number came from)."""
    if requested and requested > 0:
        return float(requested), "--peak-flops"
    unknown = ""
    if device.type == "cuda" and dtype == torch.bfloat16:
        name = torch.cuda.get_device_name(device)
        peak = datasheet_peak(name)
        if peak is not None:
            return peak, f"{name} bf16 datasheet"
        unknown = f"{name} is not in the datasheet table; "
    from nanochat_core.common.flops_probe import machine_peak

    peak, how = machine_peak(device, dtype)
    return peak, unknown + how

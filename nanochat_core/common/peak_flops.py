"""The denominator of MFU: the peak FLOP/s of one device.

`--peak-flops` wins. On CUDA a table of dense bf16 peaks of common GPUs (MFU is then comparable
with nanochat's, which assumes an H100's 989 TFLOP/s); on CPU, or an unknown GPU, a one-second
matmul probe in the compute dtype measures what this machine actually reaches.
"""
from __future__ import annotations

import torch

# Dense (no 2:4 sparsity) bf16 tensor-core peaks, FLOP/s, by a substring of the device name.
_GPU_BF16_PEAKS = (
    ("H200", 989e12), ("H100", 989e12), ("H800", 989e12), ("GH200", 989e12),
    ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12),
    ("A10G", 70e12), ("L4", 121e12), ("RTX 4090", 165e12), ("RTX 3090", 71e12),
)


def resolve_peak_flops(requested: float, device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """(peak FLOP/s of one device, where the number came from)."""
    if requested and requested > 0:
        return float(requested), "--peak-flops"
    if device.type == "cuda" and dtype == torch.bfloat16:
        name = torch.cuda.get_device_name(device)
        for key, peak in _GPU_BF16_PEAKS:
            if key in name:
                return peak, f"{name} bf16 datasheet"
    from nanochat_core.common.flops_probe import measure_matmul_peak

    peak = measure_matmul_peak(device, dtype, seconds=1.0)
    return peak, f"measured {str(dtype).removeprefix('torch.')} matmul probe"

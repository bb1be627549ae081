"""`--fp8`: fp8 matmuls through torchao, only where the hardware has them (CUDA SM90+)."""
from __future__ import annotations

import torch


def check_fp8(fp8: bool, device_type: str) -> None:
    """Refuse --fp8 up front, with the reason, where it cannot work."""
    if not fp8:
        return
    if device_type != "cuda":
        raise RuntimeError(f"--fp8 needs a CUDA GPU with compute capability 9.0+ (H100 class); this run is on {device_type}")
    capability = torch.cuda.get_device_capability()
    if capability < (9, 0):
        raise RuntimeError(f"--fp8 needs a CUDA GPU with compute capability 9.0+ (H100 class); this GPU has {capability}")
    try:
        import torchao.float8  # noqa: F401
    except ImportError:
        raise RuntimeError("--fp8 needs torchao: `pip install torchao`") from None


def convert_fp8(model: torch.nn.Module) -> None:
    """Swap the Linear layers whose dims are multiples of 16 (what fp8 kernels need) for torchao's
    Float8Linear; the tiny value-embedding gates (12 inputs) stay in the compute dtype."""
    from torchao.float8 import convert_to_float8_training

    def wanted(module, name):
        return isinstance(module, torch.nn.Linear) and module.in_features % 16 == 0 and module.out_features % 16 == 0

    convert_to_float8_training(model, module_filter_fn=wanted)

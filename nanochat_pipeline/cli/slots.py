"""The training pool's default limit for a preset: how many of its cells train at once on this
machine when neither NANOCHAT_TRAINING_SLOTS nor an earlier limit says (instance/home.py)."""
from __future__ import annotations

from nanochat_pipeline.instance.home import default_training_slots
from nanochat_pipeline.presets import Preset

NANOCHAT_ASPECT_RATIO = 64  # base_train's --aspect-ratio default


def preset_default_slots(preset: Preset) -> int:
    """One for cells trained elsewhere (k8s) or on an accelerator; on this machine's CPU, from its cores
    and the preset's widest cell (model_dim = depth x aspect_ratio)."""
    if preset.launch.backend != "local":
        return 1
    from nanochat_core.common.device import resolve_device_type

    device_type = resolve_device_type(str(preset.train.get("device_type", "auto")))
    widest = max(int(key.lstrip("d")) for key in preset.depth_keys) * int(preset.train.get("aspect_ratio", NANOCHAT_ASPECT_RATIO))
    return default_training_slots(device_type, widest)

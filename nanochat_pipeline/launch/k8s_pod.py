"""The pod of a training cell on Kubernetes, as plain API dicts (camelCase, as kubectl writes them):
the GPUs it asks for, the shared claim mounted where NANOCHAT_BASE_DIR is on the orchestrating side
(so paths in metadata and checkpoints mean the same file everywhere), a memory-backed /dev/shm (the
container runtime's 64 MB default breaks PyTorch's inter-process tensors and NCCL), the node selector."""
from __future__ import annotations

import re

from nanochat_pipeline.presets.launch_table import LaunchSpec

CONTAINER = "training"
DATA_VOLUME, SHM_VOLUME = "nanochat-data", "dshm"
GPU_RESOURCE = "nvidia.com/gpu"


def k8s_name(*parts: str, limit: int = 63) -> str:
    """A DNS label from free text: lowercase letters, digits and '-' (d20_2.15e18 -> d20-2-15e18)."""
    name = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    return name[:limit].rstrip("-")


def cell_labels(preset_name: str, model_tag: str) -> dict:
    return {"app.kubernetes.io/name": "nanochat", "nanochat/preset": k8s_name(preset_name),
            "nanochat/cell": k8s_name(model_tag)}


def cell_pod_spec(launch: LaunchSpec, base_dir: str) -> dict:
    """The pod spec without image and command (PipesK8sClient sets those on the first container)."""
    spec = {
        "restartPolicy": "Never",  # a failed or evicted cell is rerun by Dagster, resuming its checkpoint
        "containers": [{
            "name": CONTAINER,
            "resources": {"limits": {GPU_RESOURCE: launch.gpus_per_node}},
            "volumeMounts": [{"name": DATA_VOLUME, "mountPath": base_dir}, {"name": SHM_VOLUME, "mountPath": "/dev/shm"}],
        }],
        "volumes": [{"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": launch.volume_claim}},
                    {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}],
    }
    if launch.node_selector:
        spec["nodeSelector"] = dict(launch.node_selector)
    return spec


def env_list(env: dict) -> list[dict]:
    return [{"name": k, "value": str(v)} for k, v in env.items()]

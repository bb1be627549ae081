"""The preset's [launch] table: where a training cell runs, validated with the key at fault named.

    [launch]
    backend = "k8s"                  # "local" (default): a subprocess or torchrun on this machine
    image = "registry/nanochat:1"    # an image with this project installed (k8s)
    namespace = "nanochat"           # (k8s; default "default")
    gpus_per_node = 8                # nvidia.com/gpu per pod, one training process each (k8s)
    nodes = 1                        # > 1: a multi-node cell (torchrun c10d rendezvous)
    volume_claim = "nanochat-data"   # a ReadWriteMany claim mounted at NANOCHAT_BASE_DIR in every pod (k8s)
    node_selector = {}               # (k8s) e.g. {"nvidia.com/gpu.product" = "NVIDIA-H100-80GB-HBM3"}
    pod_wait_timeout_hours = 336     # (k8s) how long a cell may run before the asset gives up on it
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

BACKENDS = ("local", "k8s")
LAUNCH_KEYS = {"backend", "image", "namespace", "gpus_per_node", "nodes", "volume_claim", "node_selector",
               "pod_wait_timeout_hours"}
K8S_ONLY = ("image", "namespace", "gpus_per_node", "volume_claim", "node_selector", "pod_wait_timeout_hours")
# Two weeks: dagster-k8s's own default (one day) would fail a multi-day cell that is still training.
DEFAULT_POD_WAIT_HOURS = 24 * 14
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")            # a namespace
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")      # a claim


class LaunchError(ValueError):
    """A [launch] table that cannot be used; presets/__init__.py adds the file name."""


@dataclass(frozen=True)
class LaunchSpec:
    backend: str = "local"
    image: str | None = None
    namespace: str = "default"
    gpus_per_node: int = 1
    nodes: int = 1
    volume_claim: str | None = None
    node_selector: dict = field(default_factory=dict)
    pod_wait_timeout_hours: float = DEFAULT_POD_WAIT_HOURS

    def procs_per_node(self, nproc_per_node: int) -> int:
        """Training processes per node: one per GPU in a pod; [train] nproc_per_node on this machine."""
        return self.gpus_per_node if self.backend == "k8s" else nproc_per_node


def _positive_int(table: dict, key: str) -> int:
    value = table.get(key, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LaunchError(f"{key} must be a whole number of at least 1, got {value!r}")
    return value


def parse_launch(table: dict, nproc_per_node: int) -> LaunchSpec:
    unknown = sorted(set(table) - LAUNCH_KEYS)
    if unknown:
        raise LaunchError(f"unknown key(s) {unknown}; allowed: {sorted(LAUNCH_KEYS)}")
    backend = table.get("backend", "local")
    if backend not in BACKENDS:
        raise LaunchError(f"backend {backend!r} is neither 'local' nor 'k8s'")
    nodes, gpus = _positive_int(table, "nodes"), _positive_int(table, "gpus_per_node")
    if backend == "local":
        stray = [k for k in K8S_ONLY if k in table]
        if stray:
            raise LaunchError(f"{stray} only apply with backend = \"k8s\" (on this machine [train] nproc_per_node "
                              "sets the processes per node)")
        return LaunchSpec(nodes=nodes)
    for key in ("image", "volume_claim"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise LaunchError(f"backend \"k8s\" needs {key} (" + (
                "an image with this project installed" if key == "image" else
                "a ReadWriteMany PersistentVolumeClaim holding NANOCHAT_BASE_DIR") + ")")
    namespace = table.get("namespace", "default")
    if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
        raise LaunchError(f"namespace {namespace!r} is not a Kubernetes name (lowercase letters, digits, '-')")
    if not DNS_SUBDOMAIN.match(table["volume_claim"]):
        raise LaunchError(f"volume_claim {table['volume_claim']!r} is not a Kubernetes name")
    selector = table.get("node_selector", {})
    if not isinstance(selector, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        raise LaunchError(f"node_selector must be a table of label = \"value\" strings, got {selector!r}")
    if nproc_per_node not in (1, gpus):
        raise LaunchError(f"[train] nproc_per_node = {nproc_per_node} disagrees with gpus_per_node = {gpus}: a pod runs "
                          "one training process per GPU (leave nproc_per_node out)")
    hours = table.get("pod_wait_timeout_hours", DEFAULT_POD_WAIT_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
        raise LaunchError(f"pod_wait_timeout_hours must be a positive number of hours, got {hours!r}")
    return LaunchSpec(backend="k8s", image=table["image"].strip(), namespace=namespace, gpus_per_node=gpus, nodes=nodes,
                      volume_claim=table["volume_claim"], node_selector=dict(selector), pod_wait_timeout_hours=float(hours))

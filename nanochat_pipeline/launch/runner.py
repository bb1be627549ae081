"""launch_child: start a training cell's child where the preset's [launch] table says, through Pipes,
and hand back the completed Pipes invocation (the same child module, metadata and failure either way)."""
from __future__ import annotations

import sys

from dagster._core.errors import DagsterPipesExecutionError  # not exported at top level in 1.13

from nanochat_core.common import settings
from nanochat_pipeline.launch.k8s_pod import cell_labels, cell_pod_spec
from nanochat_pipeline.launch.torchrun import child_command

LOCAL_NODES_MODULE = "nanochat_pipeline.launch.local_nodes"
IMAGE_PYTHON = "python"  # the image's interpreter, with this project installed


def local_command(preset, module: str, rdzv_id: str) -> list[str]:
    launch = preset.launch
    if launch.nodes == 1:
        return child_command(module, preset.nproc_per_node)
    return [sys.executable, "-m", LOCAL_NODES_MODULE, "--nodes", str(launch.nodes), "--nproc-per-node",
            str(preset.nproc_per_node), "--rdzv-id", rdzv_id, "--module", module, "--"]


def pod_command(preset, module: str) -> list[str]:
    return child_command(module, preset.launch.gpus_per_node, python=IMAGE_PYTHON)


def launch_child(context, subprocess_client, preset, module: str, model_tag: str, args: list[str], env: dict):
    launch = preset.launch
    if launch.backend == "local":
        return subprocess_client.run(command=local_command(preset, module, context.run.run_id) + args, context=context,
                                     env=env)
    base_dir, labels = str(settings.base_dir()), cell_labels(preset.name, model_tag)
    try:
        from dagster_k8s.client import DagsterK8sError, DagsterK8sJobStatusException
    except ImportError:
        raise RuntimeError(f"preset {preset.name} launches its cells on Kubernetes ([launch] backend = \"k8s\"), which "
                           "needs dagster-k8s: pip install -e '.[cluster]'") from None
    try:
        if launch.nodes > 1:
            from nanochat_pipeline.launch.k8s_job import run_multinode_cell

            return run_multinode_cell(context, launch, base_dir, module, args, env, labels, model_tag)
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient().run(
            context=context, image=launch.image, command=pod_command(preset, module) + args, namespace=launch.namespace,
            env=env, base_pod_meta={"labels": labels}, base_pod_spec=cell_pod_spec(launch, base_dir),
            pod_wait_timeout=launch.pod_wait_timeout_hours * 3600)
    except (DagsterK8sError, DagsterK8sJobStatusException, TimeoutError) as e:
        # a failed, evicted or lost pod: the same failure (and resume message) as a local child's
        raise DagsterPipesExecutionError(f"{type(e).__name__}: {e}") from e

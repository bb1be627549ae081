"""`python -m nanochat_pipeline manifests --preset FILE --out DIR`: what a k8s preset would submit, written
without a cluster: <model_tag>.yaml per grid cell (a Pod, or a headless Service + an Indexed Job for a
multi-node cell) and helm-values.yaml for the official Dagster Helm chart. The Pipes session's two
variables (DAGSTER_PIPES_CONTEXT, DAGSTER_PIPES_MESSAGES) are added at submission and are not here."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from nanochat_core.common import settings
from nanochat_pipeline.launch.k8s_job import cell_job, cell_service
from nanochat_pipeline.launch.k8s_pod import DATA_VOLUME, cell_labels, cell_pod_spec, k8s_name
from nanochat_pipeline.launch.runner import pod_command
from nanochat_pipeline.presets import SHIPPED_DIR, PresetError

CODE_SERVER_PORT = 3030


def cell_objects(preset, cell) -> list[dict]:
    """The Kubernetes objects of one cell, as API dicts."""
    from nanochat_pipeline.presets.network import declared_env
    from nanochat_pipeline.assets.training import BaseTrainConfig, cell_child_args
    from nanochat_pipeline.children import TRAIN_CHILD_MODULE

    launch, base_dir = preset.launch, str(settings.base_dir())
    args = cell_child_args(preset, cell, BaseTrainConfig()) + ["--resume-from-step", "-1"]
    labels, name = cell_labels(preset.name, cell.model_tag), k8s_name("nanochat", preset.name, cell.model_tag, limit=52)
    if launch.nodes > 1:
        return [cell_service(name, launch.namespace, labels),
                cell_job(name, launch.namespace, launch, base_dir, TRAIN_CHILD_MODULE, args, declared_env(preset), labels,
                         rdzv_id=name)]
    import kubernetes
    from dagster_k8s.pipes import build_pod_body

    # The very function PipesK8sClient.run submits through, so this file is the pod it would create.
    pod = build_pod_body(pod_name=name, image=launch.image, command=pod_command(preset, TRAIN_CHILD_MODULE) + args,
                         env_vars=declared_env(preset), base_pod_meta={"labels": labels, "namespace": launch.namespace},
                         base_pod_spec=cell_pod_spec(launch, base_dir))
    return [{"apiVersion": "v1", "kind": "Pod", **kubernetes.client.ApiClient().sanitize_for_serialization(pod)}]


def image_parts(image: str) -> tuple[str, str]:
    """registry:5000/team/nanochat:1 -> (registry:5000/team/nanochat, 1); no tag -> latest."""
    head, _, last = image.rpartition("/")
    if ":" in last:
        last, tag = last.split(":", 1)
        return (f"{head}/{last}" if head else last), tag
    return image, "latest"


def helm_values(preset) -> dict:
    """Values for the dagster/dagster chart (1.13.27): PostgreSQL, the daemon with its queue, the code
    location in the preset's image, K8sRunLauncher run pods with the claim, the training pool limit."""
    from nanochat_pipeline.instance.home import training_slots

    launch, base_dir = preset.launch, str(settings.base_dir())
    repository, tag = image_parts(launch.image)
    shipped = (SHIPPED_DIR / f"{preset.name}.toml") == preset.path
    env = {"NANOCHAT_BASE_DIR": base_dir,
           "NANOCHAT_PRESET": preset.name if shipped else str(preset.path)}  # a preset file must be in the image
    claim = {"volumes": [{"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": launch.volume_claim}}],
             "volumeMounts": [{"name": DATA_VOLUME, "mountPath": base_dir}]}
    host = os.environ.get("DAGSTER_PG_HOST")
    postgresql = ({"enabled": False, "postgresqlHost": host, "service": {"port": int(os.environ.get("DAGSTER_PG_PORT", 5432))},
                   "postgresqlUsername": os.environ.get("DAGSTER_PG_USER", "nanochat"),
                   "postgresqlDatabase": os.environ.get("DAGSTER_PG_DB", "nanochat")} if host else
                  {"enabled": True, "postgresqlUsername": "nanochat", "postgresqlDatabase": "nanochat"})
    postgresql["postgresqlScheme"] = "postgresql+psycopg2"
    return {
        "postgresql": postgresql,
        "dagsterDaemon": {"enabled": True, "runCoordinator": {"enabled": True, "type": "QueuedRunCoordinator"}},
        # The only pool is `training`: its limit is the default one (NANOCHAT_TRAINING_SLOTS when rendered).
        "concurrency": {"enabled": True, "pools": {"granularity": "run", "defaultLimit": training_slots() or 1}},
        "dagster-user-deployments": {"enabled": True, "deployments": [{
            "name": "nanochat", "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
            "dagsterApiGrpcArgs": ["-m", "nanochat_pipeline.definitions"], "port": CODE_SERVER_PORT,
            "env": [{"name": k, "value": v} for k, v in env.items()], **claim}]},
        "runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": {
            "jobNamespace": launch.namespace, "envVars": [f"{k}={v}" for k, v in env.items()], **claim}}},
    }


def write_yaml(path: Path, documents: list[dict], header: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(header + yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    os.replace(partial, path)  # never a half-written manifest


def write_manifests(preset, out: Path) -> list[Path]:
    if preset.launch.backend != "k8s":
        raise PresetError(f"{preset.path}: [launch] backend is \"local\": its cells run on this machine, there is "
                          "nothing to submit to a cluster (set backend = \"k8s\", image and volume_claim)")
    from nanochat_pipeline.partitions import cell_from_key, grid_partitions

    out.mkdir(parents=True, exist_ok=True)
    partitions = grid_partitions(preset)
    written = []
    for key in partitions.get_partition_keys():
        cell = cell_from_key(partitions, key)
        path = out / f"{cell.model_tag}.yaml"
        write_yaml(path, cell_objects(preset, cell),
                   f"# base_model[{key}] of preset {preset.name}; the Pipes variables are added at submission\n")
        written.append(path)
    path = out / "helm-values.yaml"
    write_yaml(path, [helm_values(preset)], "# helm install dagster dagster/dagster --version 1.13.27 -f helm-values.yaml"
                                            " (set postgresql.postgresqlPassword)\n")
    return written + [path]

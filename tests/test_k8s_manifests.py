"""Cells as Kubernetes pods, without a cluster: the preset's [launch] table is validated; `manifests`
writes one file per cell (a Pod built by dagster-k8s's own build_pod_body, or a headless Service plus an
Indexed Job for a multi-node cell) and helm-values.yaml; every object validates against the Kubernetes
OpenAPI schema shipped in the kubernetes-validate package (offline)."""
import json

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from nanochat_pipeline.cli.parser import main
from nanochat_pipeline.presets import PresetError, load_preset
from nanochat_pipeline.children import TRAIN_CHILD_MODULE
from nanochat_pipeline.children.train import build_parser as train_child_parser

K8S = """
[launch]
backend = "k8s"
image = "registry.example:5000/team/nanochat:0.3"
namespace = "nanochat"
gpus_per_node = 8
nodes = {nodes}
volume_claim = "nanochat-data"
node_selector = {{ "nvidia.com/gpu.product" = "NVIDIA-H100-80GB-HBM3" }}
"""


def write_preset(folder, launch: str, train: str = 'device_type = "cuda"\n', name="cluster"):
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\ndepths = [4, 20]\nflops = ["1e18", "2.15e18"]\n[train]\n{train}{launch}')
    return path


def validate(document: dict) -> None:
    kubernetes_validate.validate(document, latest_version(), strict=True)


def written(out, name):
    return list(yaml.safe_load_all((out / name).read_text()))


@pytest.mark.parametrize("launch, message", [
    ('backend = "k8s"\nvolume_claim = "c"', r'backend "k8s" needs image'),
    ('backend = "k8s"\nimage = "i"', r'backend "k8s" needs volume_claim'),
    ('backend = "k8s"\nimage = "i"\nvolume_claim = "c"\nnodes = 0', "nodes must be a whole number of at least 1, got 0"),
    ('backend = "k8s"\nimage = "i"\nvolume_claim = "c"\ngpus_per_node = 0', "gpus_per_node must be .* got 0"),
    ('nodes = 1.5', r"nodes must be a whole number of at least 1, got 1\.5"),
    ('backend = "slurm"', "backend 'slurm' is neither 'local' nor 'k8s'"),
    ('backend = "local"\nimage = "i"', r"\['image'\] only apply with backend = \"k8s\""),
    ('backend = "k8s"\nimage = "i"\nvolume_claim = "c"\nnamespace = "Not_A_Name"', "namespace 'Not_A_Name' is not"),
    ('backend = "k8s"\nimage = "i"\nvolume_claim = "c"\nnode_selector = { gpu = 1 }', "node_selector must be a table"),
    ('backend = "k8s"\nimage = "i"\nvolume_claim = "c"\npod_wait_timeout_hours = 0', "pod_wait_timeout_hours must be"),
    ('gpus = 8', r"unknown key\(s\) \['gpus'\]"),
])
def test_bad_launch_tables_are_refused_by_name(tmp_path, launch, message):
    path = write_preset(tmp_path, "[launch]\n" + launch + "\n")
    with pytest.raises(PresetError, match=f"{tmp_path}/cluster.toml \\[launch\\] {message}"):
        load_preset(str(path))


def test_one_process_per_gpu_in_a_pod(tmp_path):
    path = write_preset(tmp_path, K8S.format(nodes=1), train='device_type = "cuda"\nnproc_per_node = 4\n')
    with pytest.raises(PresetError, match="nproc_per_node = 4 disagrees with gpus_per_node = 8"):
        load_preset(str(path))


def test_a_preset_without_launch_runs_locally_as_before():
    launch = load_preset("demo").launch
    assert (launch.backend, launch.nodes) == ("local", 1)


def child_args_of(command: list[str]) -> list[str]:
    return command[command.index(TRAIN_CHILD_MODULE) + 1:]


def test_single_node_cells_render_as_valid_pods(tmp_path, tmp_base_dir, monkeypatch):
    out = tmp_path / "manifests"
    assert main(["manifests", "--preset", str(write_preset(tmp_path, K8S.format(nodes=1))), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["d20_1e18.yaml", "d20_2.15e18.yaml", "d4_1e18.yaml",
                                                     "d4_2.15e18.yaml", "helm-values.yaml"]
    [pod] = written(out, "d20_2.15e18.yaml")
    validate(pod)
    spec, [container] = pod["spec"], pod["spec"]["containers"]
    assert pod["metadata"]["namespace"] == "nanochat" and pod["metadata"]["labels"]["nanochat/cell"] == "d20-2-15e18"
    assert container["image"] == "registry.example:5000/team/nanochat:0.3"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert container["command"][:3] == ["torchrun", "--standalone", "--nproc_per_node=8"]
    # the same child and the same arguments as the asset passes (the child's own parser accepts them)
    child = train_child_parser().parse_args(child_args_of(container["command"]))
    assert (child.depth, child.target_flops, child.model_tag, child.resume_from_step) == (20, 2.15e18, "d20_2.15e18", -1)
    assert json.loads(child.train_json) == {"device_type": "cuda"}
    # the claim where NANOCHAT_BASE_DIR is, a memory-backed /dev/shm, the node selector, no restarts
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts[str(tmp_base_dir)]]["persistentVolumeClaim"] == {"claimName": "nanochat-data"}
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory"}
    assert {e["name"]: e["value"] for e in container["env"]}["NANOCHAT_BASE_DIR"] == str(tmp_base_dir / "pipeline" / "cluster")
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["restartPolicy"] == "Never"


def test_multi_node_cells_render_as_a_headless_service_and_an_indexed_job(tmp_path, tmp_base_dir):
    out = tmp_path / "manifests"
    assert main(["manifests", "--preset", str(write_preset(tmp_path, K8S.format(nodes=4))), "--out", str(out)]) == 0
    service, job = written(out, "d4_1e18.yaml")
    validate(service)
    validate(job)
    name = job["metadata"]["name"]
    template = job["spec"]["template"]
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == ("Indexed", 4, 4)
    assert service["metadata"]["name"] == name == template["spec"]["subdomain"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    [container] = template["spec"]["containers"]
    command = container["command"]
    assert command[:command.index("-m")] == [
        "torchrun", "--nnodes=4", "--nproc-per-node=8", "--rdzv-backend=c10d",
        f"--rdzv-endpoint={name}-0.{name}:29400", f"--rdzv-id={name}", "--max-restarts=0",
        "--local-addr=$(NANOCHAT_NODE_ADDR)"]
    env = container["env"]
    assert [e["name"] for e in env[:2]] == ["NODE_INDEX", "NANOCHAT_NODE_ADDR"]  # defined before use in $(...)
    assert env[1]["value"] == f"{name}-$(NODE_INDEX).{name}"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 8}
    # c10d numbers nodes by their sorted addresses: pod 0 (the one whose log the asset reads) sorts first,
    # however many nodes; and every pod's hostname <job>-<index> fits the 63-character limit.
    addresses = [f"{name}-{i}.{name}" for i in range(128)]
    assert sorted(addresses)[0] == addresses[0]
    assert len(f"{name}-127") <= 63


def test_the_schema_check_catches_a_broken_object(tmp_path, tmp_base_dir):
    out = tmp_path / "manifests"
    assert main(["manifests", "--preset", str(write_preset(tmp_path, K8S.format(nodes=2))), "--out", str(out)]) == 0
    service, job = written(out, "d4_1e18.yaml")
    job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0].pop("mountPath")
    with pytest.raises(kubernetes_validate.ValidationError, match="mountPath"):
        validate(job)
    service["spec"]["ports"][0]["port"] = "rendezvous"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(service)


def test_helm_values_name_postgres_the_run_launcher_the_image_and_the_pool(tmp_path, tmp_base_dir, monkeypatch):
    monkeypatch.setenv("NANOCHAT_TRAINING_SLOTS", "3")
    monkeypatch.setenv("DAGSTER_PG_HOST", "pg.internal")
    out = tmp_path / "manifests"
    assert main(["manifests", "--preset", str(write_preset(tmp_path, K8S.format(nodes=1))), "--out", str(out)]) == 0
    [values] = written(out, "helm-values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["jobNamespace"] == "nanochat" and f"NANOCHAT_BASE_DIR={tmp_base_dir}" in launcher["envVars"]
    assert launcher["volumes"][0]["persistentVolumeClaim"]["claimName"] == "nanochat-data"
    assert values["concurrency"]["pools"] == {"granularity": "run", "defaultLimit": 3}
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"] == "pg.internal"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    [code] = values["dagster-user-deployments"]["deployments"]
    assert code["image"] == {"repository": "registry.example:5000/team/nanochat", "tag": "0.3", "pullPolicy": "IfNotPresent"}
    assert code["dagsterApiGrpcArgs"] == ["-m", "nanochat_pipeline.definitions"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    # the run pods mount the claim where the cells do, so the asset's checks read the cells' checkpoints
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "run"},
           "spec": {"containers": [{"name": "run", "image": "x", "volumeMounts": launcher["volumeMounts"]}],
                    "volumes": launcher["volumes"]}}
    validate(pod)


def test_a_local_preset_has_nothing_to_submit(tmp_path, capsys):
    assert main(["manifests", "--preset", "demo", "--out", str(tmp_path / "m")]) == 2
    assert '[launch] backend is "local"' in capsys.readouterr().err
    assert not (tmp_path / "m").exists()

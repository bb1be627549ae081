"""A multi-node cell on Kubernetes: one Indexed Job of `nodes` pods plus a headless Service that gives
each pod a stable name (<job>-<index>.<job>), all core Kubernetes API. Every pod runs the same torchrun
line; they meet at pod 0's name through a c10d rendezvous, and pod 0 holds global rank 0 (torchrun
numbers nodes by their sorted --local-addr), so the asset reads Pipes messages from pod 0's log only."""
from __future__ import annotations

from nanochat_pipeline.launch.k8s_pod import cell_pod_spec, env_list, k8s_name
from nanochat_pipeline.presets.launch_table import LaunchSpec
from nanochat_pipeline.launch.torchrun import RDZV_PORT, multinode_command

# A Job pod's index: an annotation (read into NODE_INDEX), and since Kubernetes 1.28 a label as well.
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
JOB_NAME_MAX = 52  # a pod's hostname is <job>-<index>, and a hostname holds at most 63 characters


def job_name(model_tag: str, run_id: str) -> str:
    return k8s_name("nanochat", model_tag, run_id[:8], limit=JOB_NAME_MAX)


def cell_service(name: str, namespace: str, labels: dict) -> dict:
    """Headless: DNS answers each pod's own address, before the pods are ready (the rendezvous comes first)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"nanochat/job": name},
                     "ports": [{"name": "rendezvous", "port": RDZV_PORT, "targetPort": RDZV_PORT}]}}


def cell_job(name: str, namespace: str, launch: LaunchSpec, base_dir: str, module: str, args: list[str], env: dict,
             labels: dict, rdzv_id: str) -> dict:
    pod_labels = labels | {"nanochat/job": name}
    spec = cell_pod_spec(launch, base_dir)
    spec["subdomain"] = name  # with the Service of the same name: <job>-<index>.<job> resolves to each pod
    node_env = [
        {"name": "NODE_INDEX", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}},
        {"name": "NANOCHAT_NODE_ADDR", "value": f"{name}-$(NODE_INDEX).{name}"},  # Kubernetes expands $(NODE_INDEX)
    ]
    command = multinode_command(module, launch.nodes, launch.gpus_per_node, f"{name}-0.{name}:{RDZV_PORT}", rdzv_id,
                                local_addr="$(NANOCHAT_NODE_ADDR)") + args
    spec["containers"][0].update({"image": launch.image, "command": command, "env": node_env + env_list(env),
                                  "ports": [{"name": "rendezvous", "containerPort": RDZV_PORT}]})
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"completionMode": "Indexed", "completions": launch.nodes, "parallelism": launch.nodes,
                     "backoffLimit": 0,  # a lost node fails the cell; Dagster's next run resumes the checkpoint
                     "template": {"metadata": {"labels": pod_labels}, "spec": spec}}}


def run_multinode_cell(context, launch: LaunchSpec, base_dir: str, module: str, args: list[str], env: dict,
                       labels: dict, model_tag: str):
    """Submit the Service and the Job, stream pod 0's log into the Pipes session, wait for every pod to
    succeed, then delete both. Needs a cluster: here it is only rendered and validated (tests/test_k8s_*)."""
    from dagster import PipesEnvContextInjector, open_pipes_session
    from dagster._core.pipes.client import PipesClientCompletedInvocation
    from dagster_k8s import PipesK8sClient
    from dagster_k8s.client import DagsterKubernetesClient, WaitForPodState
    from dagster_k8s.pipes import PipesK8sPodLogsMessageReader

    PipesK8sClient()._load_k8s_config()  # in-cluster config inside a run pod, else kubeconfig, as the pod client does
    client = DagsterKubernetesClient.production_client()
    reader = PipesK8sPodLogsMessageReader()
    name, namespace, timeout = job_name(model_tag, context.run.run_id), launch.namespace, launch.pod_wait_timeout_hours * 3600
    with open_pipes_session(context=context, context_injector=PipesEnvContextInjector(),
                            message_reader=reader) as session:
        job = cell_job(name, namespace, launch, base_dir, module, args, env | session.get_bootstrap_env_vars(),
                       labels, context.run.run_id)
        client.core_api.create_namespaced_service(namespace, cell_service(name, namespace, labels))
        try:
            client.batch_api.create_namespaced_job(namespace, job)
            pod0 = _wait_for_pod0(client, name, namespace, timeout)
            client.wait_for_pod(pod0, namespace, wait_for_state=WaitForPodState.Ready, wait_timeout=timeout)
            reader.consume_pod_logs(context=context, core_api=client.core_api, pod_name=pod0, namespace=namespace)
            client.wait_for_job_success(name, namespace, wait_timeout=timeout, num_pods_to_wait_for=launch.nodes)
        finally:
            client.delete_job(name, namespace)
            client.core_api.delete_namespaced_service(name, namespace)
    return PipesClientCompletedInvocation(session)


def _wait_for_pod0(client, name: str, namespace: str, timeout: float) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = client.core_api.list_namespaced_pod(namespace, label_selector=f"nanochat/job={name},{INDEX_KEY}=0").items
        if pods:
            return pods[0].metadata.name
        time.sleep(5)
    raise TimeoutError(f"pod 0 of job {name} did not appear within {timeout:.0f} s")

"""A multi-node cell tried on this machine, as a user tries a multi-node preset before a cluster: a local
preset with [launch] nodes = 2 runs two torchrun "nodes" (--nnodes=2 --nproc-per-node=1, c10d rendezvous
on 127.0.0.1, gloo) through the asset, and trains exactly what one process with gradient accumulation 2
trains (per-step losses and val bpb within 1e-4); the checkpoint the asset reports is rank 0's.

The data is test_distributed's: documents of exactly T byte-level tokens, row groups of B documents,
so the ranks' micro-batches are the single process's two micro-steps."""
import json

import pytest

from nanochat_core.common import settings
from nanochat_core.common.file_hash import files_sha256
from test_distributed import LOSS, B, T, fixed_length_docs
from helpers import latest_materialization, materialize, tiny_defs, write_shards
from train_fixtures import write_tokenizer

pytestmark = pytest.mark.slow
CELL, TAG, STEPS = "d2|1e9", "d2_1e9", 5
TRAIN = {"device_type": "cpu", "aspect_ratio": 32, "head_dim": 32, "max_seq_len": T, "window_pattern": "L",
         "device_batch_size": B, "total_batch_size": 2 * B * T, "num_iterations": STEPS, "eval_every": STEPS,
         "eval_tokens": 4 * B * T, "matrix_lr": 0.5, "embedding_lr": 5.0, "unembedding_lr": 0.2, "warmup_steps": 1,
         "core_metric_every": -1, "sample_every": -1, "peak_flops": 1e11, "compile": "0"}


def preset_with_data(folder, name: str, launch: str):
    path = folder / f"{name}.toml"
    train = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TRAIN.items())
    path.write_text(f'name = "{name}"\ndepths = [2]\nflops = ["1e9"]\n[train]\n{train}\n{launch}')
    defs, preset = tiny_defs(path)
    docs = fixed_length_docs(80, seed=1)
    data_dir = settings.base_data_dir(preset.root)
    write_shards(data_dir, [docs[:64], docs[64:]], row_group_size=B)
    (data_dir / "manifest.json").write_text('{"written_by": "tests/test_k8s_multinode_local.py"}')
    write_tokenizer(settings.tokenizer_dir(preset.root), docs, 265)
    return defs, preset


def trained_cell(folder, name: str, launch: str, capfd):
    import dagster as dg

    defs, preset = preset_with_data(folder, name, launch)
    capfd.readouterr()
    with dg.instance_for_test() as instance:
        materialize(defs, instance, ["base_model"], CELL, raise_on_error=False)  # 5 steps: checks may fail
        mat = latest_materialization(instance, "base_model", CELL)
    out = capfd.readouterr().out
    losses = [(int(s), float(v)) for s, v in LOSS.findall(out)]
    assert mat is not None and len(losses) == STEPS, out[-3000:]
    return preset, {k: v.value for k, v in mat.metadata.items()}, mat.tags["dagster/data_version"], losses, out


def test_two_local_nodes_match_one_process_with_gradient_accumulation(tmp_base_dir, tmp_path, capfd):
    _, single, _, single_losses, out1 = trained_cell(tmp_path, "single", "", capfd)
    preset, nodes, data_version, node_losses, out2 = trained_cell(tmp_path, "twonodes", "[launch]\nnodes = 2\n", capfd)
    assert "gradient accumulation steps: 2" in out1 and "gradient accumulation steps: 1" in out2
    for (s1, l1), (s2, l2) in zip(single_losses, node_losses):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4), (single_losses, node_losses)
    assert nodes["val_bpb"] == pytest.approx(single["val_bpb"], rel=1e-4)

    ckpt_dir = settings.base_checkpoints_dir(preset.root) / TAG
    model_file = ckpt_dir / f"model_{STEPS:06d}.pt"
    assert nodes["checkpoint"] == str(model_file)  # reported by rank 0 over Pipes
    assert data_version == files_sha256([model_file])
    # a world of two: each rank saved its own optimizer shard; the model file is written once, by rank 0
    assert sorted(p.name for p in ckpt_dir.glob(f"*_{STEPS:06d}*")) == [
        f"meta_{STEPS:06d}.json", f"model_{STEPS:06d}.pt", f"optim_{STEPS:06d}_rank0.pt", f"optim_{STEPS:06d}_rank1.pt"]


def test_a_failed_node_stops_the_others(tmp_path):
    """Node 1 dies before the process group forms; node 0 would wait for it in init_process_group (half an
    hour by default): the local launcher stops it and reports the failure."""
    import os
    import subprocess
    import sys
    import time

    (tmp_path / "fails_on_node1.py").write_text(
        "import os, sys\n"
        "if os.environ['GROUP_RANK'] == '1':\n    sys.exit(3)\n"
        "import torch.distributed as dist\ndist.init_process_group('gloo')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "nanochat_pipeline.launch.local_nodes", "--nodes", "2",
                           "--rdzv-id", "fail-test", "--module", "fails_on_node1"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0, done.stdout + done.stderr
    assert time.monotonic() - started < 120

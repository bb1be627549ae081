"""A 2-process torchrun run on CPU (gloo) matches a 1-process run with gradient accumulation 2.

To make both see the same data, every document is exactly T ASCII characters under a byte-level
tokenizer (T tokens, T+1 with BOS: exactly one row) and every row group holds exactly
device_batch_size documents. Packing then places documents in arrival order: the single process
reads row groups 0 and 1 in its two micro-steps, while ranks 0 and 1 read row group 0 and 1.
"""
import os
import random
import re
import subprocess
import sys

import pytest
import torch

from helpers import write_shards
from train_fixtures import write_tokenizer

T, B = 32, 2
FLAGS = ["--depth", "2", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", str(T),
         "--window-pattern", "L", "--device-batch-size", str(B), "--total-batch-size", str(2 * B * T),
         "--num-iterations", "5", "--eval-every", "5", "--matrix-lr", "0.5", "--embedding-lr", "5", "--unembedding-lr", "0.2", "--eval-tokens", str(4 * B * T), "--warmup-steps", "1",
         "--core-metric-every", "-1", "--sample-every", "-1", "--peak-flops", "1e11", "--device-type", "cpu"]
LOSS = re.compile(r"^step (\d{5})/\d{5} .*\| loss: (\d+\.\d{6}) \|", re.M)


def fixed_length_docs(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    docs = []
    for _ in range(n):
        text = ""
        while len(text) < T:
            text += rng.choice(words) + " "
        docs.append(text[:T])
    return docs


@pytest.fixture
def byte_level_base(tmp_path, monkeypatch):
    root = tmp_path / "base"
    docs = fixed_length_docs(80, seed=1)
    write_shards(root / "base_data", [docs[:64], docs[64:]], row_group_size=B)  # 32 train row groups
    tok = write_tokenizer(root / "tokenizer", docs, 265)
    assert all(len(tok.encode(d)) == T for d in docs)
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(root))
    return root


def run(cmd, tag):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd + FLAGS + ["--model-tag", tag], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    losses = [(int(s), float(v)) for s, v in LOSS.findall(proc.stdout)]
    assert len(losses) == 5, proc.stdout
    return losses, proc.stdout


@pytest.mark.slow
def test_two_process_torchrun_matches_gradient_accumulation(byte_level_base):
    single, out1 = run([sys.executable, "-m", "nanochat_core.cli.base_train"], "single")
    double, out2 = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "nanochat_core.cli.base_train"], "double")
    assert "gradient accumulation steps: 2" in out1 and "gradient accumulation steps: 1" in out2
    for (s1, l1), (s2, l2) in zip(single, double):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4), (single, double)
    ckpts = byte_level_base / "base_checkpoints"
    assert sorted(p.name for p in (ckpts / "double").glob("optim_*")) == ["optim_000005_rank0.pt",
                                                                          "optim_000005_rank1.pt"]
    a = torch.load(ckpts / "single" / "model_000005.pt", weights_only=True)
    b = torch.load(ckpts / "double" / "model_000005.pt", weights_only=True)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    bpb = lambda out: float(re.search(r"Step 00005 \| Validation bpb: (\S+)", out).group(1))  # noqa: E731
    assert bpb(out1) == pytest.approx(bpb(out2), rel=1e-4)

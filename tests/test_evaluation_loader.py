"""Evaluation under torchrun: the ranks split one process's batches, so a validation shard with a
single row group serves any number of ranks and bpb equals a one-process run's."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from nanochat_core.data.loader import evaluation_loader, pretraining_loader
from train_fixtures import build_base, take

CPU_FLAGS = ["--depth", "4", "--head-dim", "64", "--max-seq-len", "512", "--window-pattern", "L",
             "--total-batch-size", "8192", "--device-batch-size", "8", "--eval-tokens", "16384",
             "--core-metric-every", "-1", "--sample-every", "-1"]


@pytest.fixture(scope="module")
def one_row_group_val(tmp_path_factory):
    """build_base's shards with the validation file rewritten as one row group (what a small corpus gets)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nanochat_core.tokenizer.bpe import get_tokenizer

    root = build_base(tmp_path_factory.mktemp("base"), n_docs=600)
    val = sorted((root / "base_data").glob("*.parquet"))[-1]
    texts = pq.read_table(val).column("text").to_pylist()
    pq.write_table(pa.table({"text": texts}), val, row_group_size=len(texts))
    assert pq.ParquetFile(val).num_row_groups == 1
    return root / "base_data", get_tokenizer(root)


def test_ranks_share_one_process_batches(one_row_group_val):
    folder, tok = one_row_group_val
    with pytest.raises(ValueError, match="too few row groups for 2 ranks"):  # why evaluation needs its own split
        pretraining_loader(tok, 2, 16, "val", folder, rank=1, world_size=2)
    one = take(pretraining_loader(tok, 2, 16, "val", folder), 6)
    for world in (2, 3):
        shares = [take(evaluation_loader(tok, 2, 16, "val", folder, rank=r, world_size=world), 6 // world)
                  for r in range(world)]
        for i, (x, y, _) in enumerate(one):
            rx, ry, _ = shares[i % world][i // world]
            assert torch.equal(x, rx) and torch.equal(y, ry)
    with pytest.raises(ValueError, match="rank 2 out of range"):
        evaluation_loader(tok, 2, 16, "val", folder, rank=2, world_size=2)


def bpb_lines(text: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^(train|val) bpb: ([0-9.]+)$", text, re.M)}


@pytest.mark.slow
@pytest.mark.timeout(1200)  # measured 572 s on a heavily loaded 2-core machine
def test_readme_torchrun_example_on_readme_data(tmp_path):
    """The README's data (embedded corpus, 1M-char shards: a one-row-group validation shard, vocab
    4096), its torchrun base_train example with fewer steps, then bpb under 2 ranks = 1 process."""
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}

    def run(cmd, timeout=900):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout + done.stderr

    cli = [sys.executable, "-m"]
    run(cli + ["nanochat_core.cli.repackage_data", "--source", "embedded", "--chars-per-shard", "1000000", "--no-progress"])
    run(cli + ["nanochat_core.cli.tok_train", "--vocab-size", "4096", "--max-chars", "20000000"])
    torchrun = [shutil.which("torchrun") or "torchrun", "--standalone", "--nproc_per_node=2", "-m"]
    out = run(torchrun + ["nanochat_core.cli.base_train", *CPU_FLAGS, "--num-iterations", "2", "--eval-every", "1",
                          "--model-tag", "d4"])
    assert len(re.findall(r"Validation bpb: [0-9.]+", out)) == 3  # steps 0, 1 and 2
    # a quarter of the README's 65536 evaluation tokens: two batches a rank under torchrun, as many as it takes
    bpb = ["nanochat_core.cli.base_eval", "--eval", "bpb", "--device-batch-size", "8", "--split-tokens", "16384"]
    one, two = bpb_lines(run(cli + bpb)), bpb_lines(run(torchrun + bpb))
    assert set(one) == {"train", "val"} and one == pytest.approx(two, rel=1e-9)

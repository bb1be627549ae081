"""Shared helpers for the pipeline tests (no tests here): a tiny preset over a generated local
corpus, its Definitions on a fresh NANOCHAT_BASE_DIR, and materialization shortcuts."""
import json
from pathlib import Path

import dagster as dg

from train_fixtures import generated_documents

TINY_TRAIN = """
[train]
device_type = "cpu"
aspect_ratio = 32
head_dim = 32
max_seq_len = 64
window_pattern = "L"
device_batch_size = 4
total_batch_size = 256
warmup_steps = 2
eval_every = 10
eval_tokens = 512
core_metric_every = -1
sample_every = -1
peak_flops = 1e11
compile = "0"
"""


def write_tiny_preset(folder: Path, *, name="tiny", vocab_size=320, depths=(1,), flops=("2e9", "4e9"),
                      extra_train="", extra_sections="") -> Path:
    """A preset over 1200 generated documents: shards + tokenizer in ~2 s, a cell in a few seconds."""
    corpus = folder / "corpus.jsonl"
    if not corpus.exists():
        corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in generated_documents(1200)))
    path = folder / f"{name}-{vocab_size}.toml"
    path.write_text(f"""
name = "{name}"
depths = {list(depths)}
flops = {json.dumps(list(flops))}

[corpus]
source = "local"
input = ["{corpus}"]
chars_per_shard = 40000
row_group_size = 64

[tokenizer]
vocab_size = {vocab_size}
max_chars = 1000000

[synthetic]
num = 5
{TINY_TRAIN}{extra_train}{extra_sections}""")
    return path


def tiny_defs(preset_path: Path):
    from nanochat_pipeline.definitions import build_definitions
    from nanochat_pipeline.presets import load_preset

    preset = load_preset(str(preset_path))
    return build_definitions(preset), preset


def materialize(defs, instance, selection, partition_key=None, raise_on_error=True, run_config=None):
    key = None
    if partition_key is not None:
        depth, flops = partition_key.split("|")
        key = dg.MultiPartitionKey({"depth": depth, "flops": flops})
    return dg.materialize(list(defs.assets), selection=selection, partition_key=key, instance=instance,
                          resources=defs.resources, raise_on_error=raise_on_error, run_config=run_config)


DATA_ASSETS = ["raw_corpus", "shuffled_shards", "tokenizer"]


def latest_materialization(instance, asset: str, partition: str | None = None):
    f = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(f, limit=1).records
    return records[0].asset_materialization if records else None


def failure_messages(result) -> str:
    return "\n".join(e.event_specific_data.error.message for e in result.all_events
                     if e.is_step_failure and e.event_specific_data.error)

"""What the tests share, written once: a free port, waiting for a server or a condition, stopping a
process group, JSONL and parquet writers, chat task data in release formats, the generated corpus,
tiny presets (the [train], [sft] and [evaluation] blocks) and Dagster materialization shortcuts.

Nothing here is a test. Import it as `from helpers import ...` (tests/ is on sys.path under pytest).
"""
from __future__ import annotations

import http.server
import io
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

# ---------------------------------------------------------------- processes, ports, waiting


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, poll: float = 0.5):
    """predicate()'s first truthy value, polled every `poll` s; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll)


def wait_for_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 120, log: Path | None = None):
    """Poll `url` until it answers 2xx; fail at once if `proc` exits (its log's tail in the message)."""
    def answers():
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"the server exited with {proc.returncode} before {url} answered\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return 200 <= response.status < 300
        except OSError:
            return False

    return wait_until(answers, timeout, f"{url} to answer", poll=0.5)


def stop_process_group(proc: subprocess.Popen, sig=signal.SIGTERM, grace: float = 30) -> None:
    """Signal the process group `proc` leads (started with start_new_session=True: ours only), then
    SIGKILL it if it is still there after `grace` seconds."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def serving_http(server: http.server.HTTPServer):
    """Serve `server` (bound to 127.0.0.1) from a thread; yields its base URL; shuts it down after."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


# ---------------------------------------------------------------- files


def write_jsonl(path: Path, rows: list) -> Path:
    """One JSON object per line, parent folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_shards(data_dir: Path, shards: list[list[str]], row_group_size: int, compression: str = "zstd") -> list[Path]:
    """Write `shards` (lists of documents) as shard_XXXXX.parquet with one text column, as the data assets do."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, docs in enumerate(shards):
        path = data_dir / f"shard_{i:05d}.parquet"
        pq.write_table(pa.table({"text": docs}), path, row_group_size=row_group_size, compression=compression,
                       **({"compression_level": 3} if compression == "zstd" else {}))
        paths.append(path)
    return paths


def zipped_folder(src: Path, prefix: str) -> bytes:
    """`src`'s files as zip bytes, each under `prefix`/ (nanochat's eval bundle zip wraps all in eval_bundle/)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, f"{prefix}/{path.relative_to(src)}")
    return buf.getvalue()


# ---------------------------------------------------------------- the generated corpus

SUBJECTS = ["the cat", "a dog", "the old man", "my friend", "the teacher", "a small bird", "the farmer",
            "our neighbour", "the child", "a young woman", "the captain", "every student"]
VERBS = ["sees", "likes", "finds", "follows", "helps", "watches", "paints", "calls", "carries", "remembers"]
OBJECTS = ["a red ball", "the green door", "an apple", "the long road", "a quiet song", "the blue boat",
           "a heavy box", "the bright star", "two letters", "the warm bread"]
PLACES = ["in the park", "at home", "near the river", "under the tree", "by the sea", "on the hill",
          "after dinner", "before school", "in the morning", "at night"]


def generated_documents(n_docs: int, seed: int = 0) -> list[str]:
    """Documents of 2-12 sentences from a small vocabulary (a tiny tokenizer renders them in few tokens)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sentences = []
        for _ in range(rng.randint(2, 12)):
            s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}."
            sentences.append(s[0].upper() + s[1:])
        if rng.random() < 0.3:
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            sentences.append(f"{a} plus {b} is {a + b}.")
        docs.append(" ".join(sentences))
    return docs


# ---------------------------------------------------------------- chat task data (release formats)


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"


def conversation(rng: random.Random, tag: str) -> dict:
    return {"messages": [{"role": "user", "content": f"{tag} {sentence(rng)}?"},
                         {"role": "assistant", "content": f"{sentence(rng)} {rng.choice(PLACES)}."}]}


def write_conversations(path: Path, n: int, seed: int, tag: str) -> Path:
    rng = random.Random(seed)
    return write_jsonl(path, [conversation(rng, f"{tag}{i}") for i in range(n)])


def _mmlu_csv(path: Path, n: int, rng: random.Random, tag: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{tag}{i} {rng.choice(SUBJECTS)},{rng.choice(OBJECTS)},{rng.choice(PLACES)},{rng.choice(VERBS)},"
             f"{rng.choice(SUBJECTS)},{'ABCD'[rng.randrange(4)]}\n" for i in range(n)]
    path.write_text("".join(lines), encoding="utf-8")


def _gsm8k_rows(n: int, rng: random.Random, tag: str) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        rows.append({"question": f"{tag}{i} {a} plus {b}?", "answer": f"{a}+{b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}"})
    return rows


def _arc_rows(n: int, tag: str) -> list[dict]:
    return [{"id": f"{tag}{i}", "question": {"stem": f"{tag}{i} pick one", "choices": [
        {"text": t, "label": label} for t, label in zip("wxyz", "1234")]}, "answerKey": "2"} for i in range(n)]


def write_task_data(root: Path, smoltalk=(20, 6), mmlu=(5, 6), gsm8k=(5, 4), arc_easy_test: int | None = None,
                    seed: int = 0) -> Path:
    """SmolTalk as `{messages}` JSONL, MMLU as headerless CSV (auxiliary_train/ and data/test/), GSM8K as
    `{question, answer}` JSONL with calculator annotations, ARC-Easy test as its release JSONL.
    (train, test) counts per task; a count of None leaves that split's file out."""
    rng = random.Random(seed)
    if smoltalk[0] is not None:
        write_jsonl(root / "smoltalk" / "smol_train.jsonl", [conversation(rng, f"st{i}") for i in range(smoltalk[0])])
    if smoltalk[1] is not None:
        write_jsonl(root / "smoltalk" / "smol_test.jsonl", [conversation(rng, f"sv{i}") for i in range(smoltalk[1])])
    if mmlu[0] is not None:
        _mmlu_csv(root / "mmlu" / "data" / "auxiliary_train" / "race.csv", mmlu[0], rng, "ma")
    if mmlu[1] is not None:
        _mmlu_csv(root / "mmlu" / "data" / "test" / "virology_test.csv", mmlu[1], rng, "mt")
    if gsm8k[0] is not None:
        write_jsonl(root / "gsm8k" / "main" / "train.jsonl", _gsm8k_rows(gsm8k[0], rng, "ga"))
    if gsm8k[1] is not None:
        write_jsonl(root / "gsm8k" / "main" / "test.jsonl", _gsm8k_rows(gsm8k[1], rng, "gt"))
    if arc_easy_test is not None:
        write_jsonl(root / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl", _arc_rows(arc_easy_test, "ae"))
    return root


# ---------------------------------------------------------------- tiny presets

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


def chat_sections(*, num_iterations=2, eval_every=-1, eval_tokens=None, max_seq_len=512, total_batch_size=2048,
                  chat_tasks="GSM8K", chat_max_problems=1, task_data: Path | None = None, evaluation_extra="") -> str:
    """A tiny preset's [sft] and [evaluation] tables: a few SFT steps, an offline evaluation of a few problems."""
    sft = (f"\n[sft]\nmax_seq_len = {max_seq_len}\ndevice_batch_size = 4\ntotal_batch_size = {total_batch_size}\n"
           f"num_iterations = {num_iterations}\neval_every = {eval_every}\n"
           + (f"eval_tokens = {eval_tokens}\n" if eval_tokens is not None else "") + "chatcore_every = -1\n")
    evaluation = ("\n[evaluation]\noffline = true\n" + (f'task_data = "{task_data}"\n' if task_data is not None else "")
                  + f'chat_tasks = "{chat_tasks}"\nchat_max_problems = {chat_max_problems}\n' + evaluation_extra)
    return sft + evaluation


# ---------------------------------------------------------------- Dagster shortcuts

DATA_ASSETS = ["raw_corpus", "shuffled_shards", "tokenizer"]


def tiny_defs(preset_path: Path):
    from nanochat_pipeline.definitions import build_definitions
    from nanochat_pipeline.presets import load_preset

    preset = load_preset(str(preset_path))
    return build_definitions(preset), preset


def materialize(defs, instance, selection, partition_key=None, raise_on_error=True, run_config=None):
    import dagster as dg

    key = None
    if partition_key is not None:
        depth, flops = partition_key.split("|")
        key = dg.MultiPartitionKey({"depth": depth, "flops": flops})
    return dg.materialize(list(defs.assets), selection=selection, partition_key=key, instance=instance,
                          resources=defs.resources, raise_on_error=raise_on_error, run_config=run_config)


def latest_materialization(instance, asset: str, partition: str | None = None):
    import dagster as dg

    f = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(f, limit=1).records
    return records[0].asset_materialization if records else None


def metadata_values(materialization) -> dict:
    """A materialization's metadata as plain values."""
    return {k: v.value for k, v in materialization.metadata.items()}


def failure_messages(result) -> str:
    return "\n".join(e.event_specific_data.error.message for e in result.all_events
                     if e.is_step_failure and e.event_specific_data.error)

"""GPU acceptance run: one command, no network, one table and one JSON.

    python benchmarks/gpu_acceptance.py [--out gpu_acceptance.json] [--keep DIR]
    python benchmarks/gpu_acceptance.py --smoke      # the same stages, tiny, on CPU (gloo, fp32): the suite runs it

Stages, each a real command in a fresh process (a failed stage is reported, the others still run):
  main_job      the pipeline's main job on a preset of two grid cells (corpus, shards, tokenizer, both cells, the
                scaling fit, SFT and the report of the chat cell); orchestration overhead = wall time minus the
                children's training time (Dagster's recorded training_seconds), as a share of the wall time.
                Its corpus (the embedded one), shards and tokenizer are what every later stage uses.
  train_sssl    base_train at depth 12 for 50 steps, torch.compile, bf16, window pattern SSSL: tok/s, MFU against
  train_l       the datasheet peak (base_train's known-GPU figure), peak memory, the attention backend chosen;
  train_fp8     the same with pattern L; and SSSL with --fp8 (SM90 only, else not run, with the reason).
  base_eval     bits per byte of the SSSL model on the validation split.
  sft           20 chat_sft steps from the SSSL model (identity conversations and the generated arithmetic rows;
                offline, the other task data is left out, as chat_sft reports).
  chat_eval     chat_eval -a Arithmetic on 50 problems of the SFT model.
  generate      engine generation tok/s with the KV cache at batch 1 and 8 (the SFT model, greedy).
  torchrun      base_train under a one-process torchrun: nccl on CUDA (seen in NCCL's own log), gloo on CPU.

Everything lives in a temporary folder (NANOCHAT_BASE_DIR, DAGSTER_HOME there); HF_HUB_OFFLINE=1, so FA3 is used
only when the `kernels` package and its build are already on disk. Budget: under 8 minutes on one H100.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The sizes of each profile. gpu: the acceptance run; smoke: the same stages at toy sizes on CPU.
PROFILES = {
    "gpu": {
        "device": "cuda", "train": ["--depth", "12", "--max-seq-len", "2048", "--device-batch-size", "32",
                                    "--total-batch-size", "65536", "--num-iterations", "50", "--compile", "1"],
        "eval_tokens": 2 ** 20, "eval_batch": 32,
        # 20 steps do not repay compiling (~40 s on a GPU): the 8-minute budget goes to the d12 runs
        "sft": ["--num-iterations", "20", "--device-batch-size", "16", "--max-seq-len", "2048",
                "--total-batch-size", "32768", "--compile", "0"],
        "chat_eval": ["-x", "50", "-m", "64", "-b", "8"], "gen_tokens": 128,
        "torchrun": ["--depth", "4", "--max-seq-len", "1024", "--device-batch-size", "16", "--total-batch-size",
                     "16384", "--num-iterations", "10", "--compile", "0"],
        "timeout": 300,
        "preset": """
name = "gpu_acceptance"
depths = [2, 4]
flops = ["3e14"]
[corpus]
source = "embedded"
[tokenizer]
vocab_size = 8192
[synthetic]
num = 50
[train]
device_type = "cuda"
max_seq_len = 1024
window_pattern = "SSSL"
device_batch_size = 32
total_batch_size = 32768
eval_every = 100000         # only at the end: the pipeline's checks want each cell's val_bpb
eval_tokens = 262144
core_metric_every = -1
sample_every = -1
compile = "0"
[sft]
max_seq_len = 1024
device_batch_size = 8
total_batch_size = 16384
num_iterations = 20
eval_every = 100000
eval_tokens = 65536
chatcore_every = -1
[evaluation]
offline = true
core_max_per_task = 20
chat_tasks = "Arithmetic"
chat_max_problems = 20
chat_cells = ["d4|3e14"]
""",
    },
    "smoke": {
        "device": "cpu", "train": ["--depth", "2", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "128",
                                   "--device-batch-size", "4", "--total-batch-size", "512", "--num-iterations", "3",
                                   "--compile", "0", "--peak-flops", "1e11"],
        "eval_tokens": 1024, "eval_batch": 4,
        "sft": ["--num-iterations", "2", "--device-batch-size", "2", "--max-seq-len", "512", "--total-batch-size",
                "1024", "--compile", "0", "--peak-flops", "1e11"],
        "chat_eval": ["-x", "3", "-m", "8", "-b", "3"], "gen_tokens": 8,
        "torchrun": ["--depth", "1", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "64",
                     "--device-batch-size", "2", "--total-batch-size", "128", "--num-iterations", "2",
                     "--compile", "0", "--peak-flops", "1e11"],
        "timeout": 600,  # a loaded 2-core machine takes ~30 s just to start a process
        "preset": """
name = "gpu_acceptance_smoke"
depths = [1, 2]
flops = ["1e10"]
[corpus]
source = "embedded"
max_bytes = 300_000
chars_per_shard = 100_000
row_group_size = 128
[tokenizer]
vocab_size = 512
max_chars = 300_000
[synthetic]
num = 8
[train]
device_type = "cpu"
aspect_ratio = 12
head_dim = 12
max_seq_len = 64
window_pattern = "SL"
device_batch_size = 8
total_batch_size = 512
eval_every = 100000         # only at the end: the pipeline's checks want each cell's val_bpb
eval_tokens = 1024
core_metric_every = -1
sample_every = -1
compile = "0"
peak_flops = 1e11
num_iterations = 3         # overrides each cell's budget: the smoke checks the wiring, not the law
[sft]
max_seq_len = 512
device_batch_size = 2
total_batch_size = 1024
num_iterations = 2
eval_every = 100000
eval_tokens = 1024
chatcore_every = -1
[evaluation]
offline = true
core_max_per_task = 2
chat_tasks = "Arithmetic"
chat_max_problems = 2
chat_cells = ["d2|1e10"]
""",
    },
}
COMMON_TRAIN = ["--eval-every", "-1", "--core-metric-every", "-1", "--sample-every", "-1"]


class Run:
    """One acceptance run: the temporary root, the environment every stage shares, the results."""

    def __init__(self, profile: str, work: Path):
        self.profile, self.cfg, self.work = profile, PROFILES[profile], work
        self.base = work / "base"
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "NANOCHAT_BASE_DIR": str(self.base), "DAGSTER_HOME": str(work / "dagster_home"),
                    "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled"}
        if profile == "gpu":
            self.env["NCCL_DEBUG"] = "INFO"  # the torchrun stage shows NCCL itself in the log
        self.stages: list[dict] = []

    def command(self, name: str, argv: list[str], env: dict | None = None) -> tuple[int, str, float]:
        """Run argv, its output to logs/<name>.log; (exit code, output, seconds)."""
        log = self.logs / f"{name}.log"
        t = time.perf_counter()
        try:
            proc = subprocess.run(argv, cwd=REPO, env=env or self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=self.cfg["timeout"])
            code, out = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            code = 124
            out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            out += f"\n[timed out after {self.cfg['timeout']} s]"
        seconds = time.perf_counter() - t
        log.write_text(out)
        return code, out, seconds

    def stage(self, name: str, fn) -> dict:
        print(f"-- {name} ...", flush=True)
        t = time.perf_counter()
        try:
            row = fn()
        except StageNotRun as exc:
            row = {"status": "not run", "why": str(exc)}
        except Exception as exc:  # a stage's failure is a result: report it, go on with the next
            row = {"status": "FAILED", "why": f"{type(exc).__name__}: {exc}"}
        row = {"stage": name, **row, "seconds": round(time.perf_counter() - t, 1)}
        self.stages.append(row)
        print(f"   {format_row(row)}", flush=True)
        return row


class StageNotRun(Exception):
    """The stage cannot run on this machine (fp8 off SM90); not a failure."""


def last_error(out: str) -> str:
    """The line that says what went wrong: our tools' `<prog>: error: ...`, else the last line."""
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    ours = [ln for ln in lines if ": error: " in ln]
    return (ours or lines or ["(no output)"])[-1][:300]


def require(code: int, out: str, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"{what} exited {code}: {last_error(out)}")


def latest_meta(folder: Path) -> dict:
    metas = sorted(folder.glob("meta_*.json"))
    if not metas:
        raise RuntimeError(f"no checkpoint meta in {folder}")
    return json.loads(metas[-1].read_text())


def figure(pattern: str, out: str, cast=float):
    m = re.search(pattern, out, re.MULTILINE)
    return cast(m.group(1).replace(",", "")) if m else None


# ------------------------------------------------------------------------------------------------ stages
def main_job(run: Run) -> dict:
    preset = run.work / f"{run.profile}_preset.toml"
    preset.write_text(run.cfg["preset"])
    # one cell at a time, as one GPU trains them (its default): the overhead below is the wall time minus the
    # children's training, which cells side by side (the CPU default of the smoke's tiny cells) would overlap
    env = {**run.env, "NANOCHAT_BASE_DIR": str(run.base), "NANOCHAT_TRAINING_SLOTS": "1"}
    started = time.time()  # only this run's materializations count (a re-run skips what is up to date)
    code, out, wall = run.command("main_job", [sys.executable, "-m", "nanochat_pipeline", "run", "--preset",
                                               str(preset), "--yes", "-v"], env)
    require(code, out, "the main job")
    import dagster as dg

    os.environ["DAGSTER_HOME"] = run.env["DAGSTER_HOME"]
    training = 0.0
    with dg.DagsterInstance.get() as instance:
        for asset in ("base_model", "sft_model", "rl_model"):
            key = dg.AssetKey(asset)
            for partition in instance.get_materialized_partitions(key) or []:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
                if not records or records[0].timestamp < started:
                    continue
                seconds = records[0].asset_materialization.metadata.get("training_seconds")
                training += float(seconds.value) if seconds is not None else 0.0
    root = run.base / "pipeline" / tomllib.loads(run.cfg["preset"])["name"]  # the preset's root (nanochat_pipeline/presets)
    if not (root / "tokenizer").is_dir():
        raise RuntimeError(f"the main job succeeded but left no tokenizer under {root}")
    return {"status": "ok", "wall_s": round(wall, 1), "children_training_s": round(training, 1),
            "overhead_share": round((wall - training) / wall, 3) if wall > 0 else None, "root": str(root)}


def train(run: Run, tag: str, extra: list[str]) -> dict:
    def go():
        argv = [sys.executable, "-m", "nanochat_core.cli.base_train", *run.cfg["train"], *COMMON_TRAIN,
                "--device-type", run.cfg["device"], "--model-tag", tag, *extra]
        code, out, _ = run.command(tag, argv, run.stage_env)
        if code != 0 and "--fp8" in extra and re.search(r"--fp8 needs|torchao", out):
            raise StageNotRun(last_error(out))
        require(code, out, "base_train")
        meta = latest_meta(Path(run.stage_env["NANOCHAT_BASE_DIR"]) / "base_checkpoints" / tag)
        thr = meta.get("throughput") or {}
        return {"status": "ok", "tok_per_s": round(thr.get("tokens_per_sec", float("nan"))),
                "mfu_pct": round(thr.get("mfu", float("nan")), 2), "peak_flops": meta.get("peak_flops"),
                "peak_mem_mib": figure(r"^Peak memory: (\d+)MiB", out, int), "attention": meta.get("attention"),
                "steps": meta.get("step")}
    return go


def fp8_gate(run: Run) -> None:
    if run.cfg["device"] != "cuda":
        raise StageNotRun("fp8 needs a CUDA GPU with SM90 (this profile runs on CPU)")
    import torch

    major, minor = torch.cuda.get_device_capability()
    if (major, minor) < (9, 0):
        raise StageNotRun(f"fp8 needs SM90, this GPU is SM{major}{minor}")


def base_eval(run: Run) -> dict:
    argv = [sys.executable, "-m", "nanochat_core.cli.base_eval", "--eval", "bpb", "--model-tag", "train_sssl",
            "--split-tokens", str(run.cfg["eval_tokens"]), "--device-batch-size", str(run.cfg["eval_batch"]),
            "--device-type", run.cfg["device"]]
    code, out, _ = run.command("base_eval", argv, run.stage_env)
    require(code, out, "base_eval")
    return {"status": "ok", "val_bpb": figure(r"^val bpb: ([\d.]+)", out), "train_bpb": figure(r"^train bpb: ([\d.]+)", out)}


def sft(run: Run) -> dict:
    root = Path(run.stage_env["NANOCHAT_BASE_DIR"])
    argv = [sys.executable, "-m", "nanochat_core.cli.chat_sft", "--model-tag", "train_sssl", "--output-tag",
            "train_sssl", "--identity", str(root / "identity_conversations.jsonl"), "--task-data",
            str(root / "task_data"), "--arithmetic-epochs", "1", "--eval-every", "-1", "--chatcore-every", "-1", "--device-type",
            run.cfg["device"], *run.cfg["sft"]]
    code, out, _ = run.command("sft", argv, run.stage_env)
    require(code, out, "chat_sft")
    meta = latest_meta(root / "chatsft_checkpoints" / "train_sssl")
    thr = meta.get("throughput") or {}
    return {"status": "ok", "steps": meta.get("step"), "tok_per_s": round(thr.get("tokens_per_sec", float("nan"))),
            "attention": meta.get("attention")}


def chat_eval(run: Run) -> dict:
    root = Path(run.stage_env["NANOCHAT_BASE_DIR"])
    argv = [sys.executable, "-m", "nanochat_core.cli.chat_eval", "-i", "sft", "-g", "train_sssl", "-a", "Arithmetic",
            "--task-data", str(root / "task_data"), "--device-type", run.cfg["device"], *run.cfg["chat_eval"]]
    code, out, _ = run.command("chat_eval", argv, run.stage_env)
    require(code, out, "chat_eval")
    m = re.search(r"^Arithmetic: accuracy ([\d.]+) \+- ([\d.]+) \((\d+)/(\d+)\)", out, re.MULTILINE)
    if not m:
        raise RuntimeError(f"chat_eval printed no Arithmetic result: {last_error(out)}")
    return {"status": "ok", "arithmetic_accuracy": float(m.group(1)), "stderr": float(m.group(2)),
            "correct": int(m.group(3)), "problems": int(m.group(4))}


def generate(run: Run) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--measure-generation", str(run.cfg["gen_tokens"]),
            "--device-type", run.cfg["device"]]
    code, out, _ = run.command("generate", argv, run.stage_env)
    require(code, out, "generation")
    m = re.search(r"^GENERATION (\{.*\})$", out, re.MULTILINE)
    if not m:
        raise RuntimeError(f"no GENERATION line: {last_error(out)}")
    return {"status": "ok", **json.loads(m.group(1))}


def torchrun(run: Run) -> dict:
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m",
            "nanochat_core.cli.base_train", *run.cfg["torchrun"], *COMMON_TRAIN, "--device-type", run.cfg["device"],
            "--model-tag", "torchrun"]
    code, out, _ = run.command("torchrun", argv, run.stage_env)
    require(code, out, "torchrun base_train")
    meta = latest_meta(Path(run.stage_env["NANOCHAT_BASE_DIR"]) / "base_checkpoints" / "torchrun")
    if run.cfg["device"] == "cuda":
        if "NCCL INFO" not in out:
            raise RuntimeError("torchrun ran, but NCCL's log (NCCL_DEBUG=INFO) never appeared: no nccl group")
        backend = "nccl"
    else:
        backend = "gloo"
    return {"status": "ok", "backend": backend, "world_size": meta.get("world_size"), "steps": meta.get("step")}


# ------------------------------------------------------------------------------------------------ generation
def measure_generation(max_tokens: int, device_type: str) -> dict:
    """Greedy decode of max_tokens with the KV cache at batch 1 and 8 (8 samples of one prompt); best of 2."""
    import torch

    from nanochat_core.chat.engine import generate as engine_generate
    from nanochat_core.chat.loaded_model import load_chat_model
    from nanochat_core.common.device import resolve_device_type

    device = torch.device("cuda", 0) if resolve_device_type(device_type) == "cuda" else torch.device(device_type)
    chat = load_chat_model("sft", "train_sssl", device=device)
    model = chat.model
    prompt = chat.tokenizer.encode("The meaning of a tokenizer is", prepend=chat.tokenizer.get_bos_token_id())
    result = {}
    for batch in (1, 8):
        best = float("inf")
        for _ in range(2):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            n = sum(1 for _ in engine_generate(model, prompt, max_tokens, temperature=0.0, num_samples=batch))
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        result[f"tok_per_s_b{batch}"] = round(batch * n / best, 1)
    result["attention"] = model.attention.backend if model.attention else None
    result["tokens"] = max_tokens
    return result


# ------------------------------------------------------------------------------------------------ report
def format_row(row: dict) -> str:
    skip = {"stage", "status", "seconds", "root"}
    figures = ", ".join(f"{k} {v}" for k, v in row.items() if k not in skip)
    return f"{row['stage']:<11} {row['status']:<8} {row['seconds']:>7.1f}s  {figures}"


def table(run: Run, total: float, device: str) -> str:
    lines = [f"GPU acceptance ({run.profile}) on {device}: {total:.0f} s in all",
             f"{'stage':<11} {'status':<8} {'time':>8}  figures"]
    return "\n".join(lines + [format_row(r) for r in run.stages])


def device_name(profile: str) -> str:
    import torch

    if PROFILES[profile]["device"] == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (SM{''.join(map(str, torch.cuda.get_device_capability()))})"
    return f"CPU ({os.cpu_count()} cores), torch {torch.__version__}"


def run_all(profile: str, out_json: Path, keep: Path | None) -> int:
    work = keep or Path(tempfile.mkdtemp(prefix=f"gpu_acceptance_{profile}_"))
    run = Run(profile, work)
    t0 = time.perf_counter()
    if profile == "gpu":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: the gpu profile needs one (use --smoke on CPU)", file=sys.stderr)
            return 2
    job = run.stage("main_job", lambda: main_job(run))
    # Every later stage trains and evaluates on the main job's corpus, shards and tokenizer.
    run.stage_env = {**run.env, "NANOCHAT_BASE_DIR": job.get("root", str(run.base))}

    def fp8():
        fp8_gate(run)
        return train(run, "train_fp8", ["--window-pattern", "SSSL", "--fp8"])()
    later = [("train_sssl", train(run, "train_sssl", ["--window-pattern", "SSSL"])),
             ("train_l", train(run, "train_l", ["--window-pattern", "L"])), ("train_fp8", fp8),
             ("base_eval", lambda: base_eval(run)), ("sft", lambda: sft(run)), ("chat_eval", lambda: chat_eval(run)),
             ("generate", lambda: generate(run)), ("torchrun", lambda: torchrun(run))]
    for name, fn in later:
        if job["status"] != "ok":
            run.stages.append({"stage": name, "status": "FAILED", "seconds": 0.0,
                               "why": "not run: the main job failed, so there is no corpus or tokenizer"})
        else:
            run.stage(name, fn)
    total = time.perf_counter() - t0
    device = device_name(profile)
    print()
    print(table(run, total, device))
    report = {"profile": profile, "device": device, "total_seconds": round(total, 1), "stages": run.stages,
              "logs": str(run.logs)}
    tmp = out_json.with_name(out_json.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out_json)
    print(f"wrote {out_json}; logs in {run.logs}")
    if keep is None and all(r["status"] != "FAILED" for r in run.stages):
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r["status"] == "FAILED" for r in run.stages) else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="the same stages at toy sizes on CPU (gloo, fp32)")
    p.add_argument("--out", type=Path, default=None, help="the JSON (default gpu_acceptance[_smoke].json here)")
    p.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp dir, "
                                                           "removed unless a stage failed)")
    p.add_argument("--measure-generation", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--device-type", type=str, default="auto", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.measure_generation is not None:
        print("GENERATION " + json.dumps(measure_generation(a.measure_generation, a.device_type)), flush=True)
        return 0
    profile = "smoke" if a.smoke else "gpu"
    out = a.out or Path(f"gpu_acceptance{'_smoke' if a.smoke else ''}.json")
    return run_all(profile, out.resolve(), a.keep)


if __name__ == "__main__":
    sys.exit(main())

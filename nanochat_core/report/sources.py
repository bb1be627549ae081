"""Read each stage's recorded results for the report card (nothing is recomputed from logs).

Every reader returns a section dict: {"status": "ok", ...numbers, "files": [...]} or
{"status": "missing", "reason": "<what file is missing and what produces it>"}, so an offline run
with nothing evaluated still gets a report that says plainly what could not be evaluated and why.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from nanochat_core.common import settings
from nanochat_core.model.sizing import meta_model, scaling_params
from nanochat_core.model.checkpoint import UNTIMED_STEPS  # steps left out of total_training_time


def missing(reason: str) -> dict:
    return {"status": "missing", "reason": reason}


def clean(x):
    """JSON-safe numbers: inf/NaN (e.g. an untouched min_val_bpb) become None."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def latest_step_file(folder: Path, prefix: str) -> tuple[Path, int] | None:
    """<folder>/<prefix>_<step>.json with the largest step."""
    pattern = re.compile(re.escape(prefix) + r"_(\d{6,})\.json$")
    found = [(int(m.group(1)), p) for p in folder.glob(f"{prefix}_*.json") if (m := pattern.match(p.name))] \
        if folder.is_dir() else []
    if not found:
        return None
    step, path = max(found)
    return path, step


# ---------------------------------------------------------------- tokenizer
def tokenizer_section(root: Path | None = None, val_chars: int = 1_000_000) -> dict:
    from nanochat_core.tokenizer.bpe import TOKEN_BYTES_FILE, TOKENIZER_FILE, Tokenizer, compute_token_bytes

    folder = settings.tokenizer_dir(root)
    if not (folder / TOKENIZER_FILE).is_file():
        return missing(f"{folder / TOKENIZER_FILE} is missing: no tokenizer trained (run tok_train)")
    tok = Tokenizer.from_directory(folder)
    vocab, specials = tok.get_vocab_size(), len(tok.get_special_tokens())
    tb_file = folder / TOKEN_BYTES_FILE
    if tb_file.is_file():
        import torch
        token_bytes = torch.load(tb_file, map_location="cpu", weights_only=True)
    else:
        token_bytes = compute_token_bytes(tok)
    lengths = token_bytes[token_bytes > 0].float()
    section = {"status": "ok", "vocab_size": vocab, "special_tokens": specials, "merges": vocab - 256 - specials,
               "mean_token_bytes": round(lengths.mean().item(), 3), "max_token_bytes": int(lengths.max().item()),
               "files": [str(folder / TOKENIZER_FILE)]}
    section["compression"] = compression(tok, root, val_chars)
    return section


def _bytes_per_token(tok, text: str) -> dict:
    n = len(tok.encode(text))
    size = len(text.encode("utf-8"))
    return {"bytes": size, "tokens": n, "bytes_per_token": round(size / n, 3) if n else None}


def compression(tok, root: Path | None, val_chars: int) -> dict:
    """Bytes/token on tok_eval's built-in samples, and on the validation shard when there is one."""
    from nanochat_core.tokenizer.samples import SAMPLES
    from nanochat_core.data.parquet_files import iter_texts, split_files

    result = {"samples": {name: _bytes_per_token(tok, text) for name, text in SAMPLES.items()}}
    try:
        files = split_files("val", settings.base_data_dir(root))
        result["val_shard"] = {"file": str(files[0]),
                               **_bytes_per_token(tok, "\n".join(iter_texts(files, max_chars=val_chars)))}
    except (FileNotFoundError, ValueError) as e:
        result["val_shard"] = missing(f"no validation shard ({e})")
    return result


# ---------------------------------------------------------------- checkpoints
def _last_meta(folder: Path, producer: str) -> tuple[dict, int, Path] | str:
    from nanochat_core.model.checkpoint import find_last_step, load_meta, meta_path

    if not folder.is_dir():
        return f"{folder} is missing (run {producer})"
    try:
        step = find_last_step(folder)
    except FileNotFoundError as e:
        return str(e)
    return load_meta(folder, step), step, meta_path(folder, step)


def _model_numbers(model_config: dict) -> dict:
    """Param counts and FLOPs/token of the checkpoint's architecture (meta-device model: no memory)."""
    from nanochat_core.model.gpt import GPTConfig

    model = meta_model(GPTConfig(**model_config))
    return {"param_counts": model.num_scaling_params(), "flops_per_token": model.estimate_flops()}


def base_training_section(model_tag: str, root: Path | None = None) -> dict:
    folder = settings.base_checkpoints_dir(root) / model_tag
    found = _last_meta(folder, "base_train")
    if isinstance(found, str):
        return missing(f"no base model: {found}")
    meta, step, path = found
    numbers = _model_numbers(meta["model_config"])
    counts = numbers["param_counts"]
    n_scaling = scaling_params(counts)
    batch = meta.get("total_batch_size")
    tokens = meta.get("tokens_trained") or (step * batch if batch else None)
    fpt = meta.get("flops_per_token") or numbers["flops_per_token"]
    loop = meta.get("loop_state") or {}
    seconds, tok_per_sec, mfu = _throughput(meta, step, batch, fpt)
    return {
        "status": "ok", "checkpoint": str(path), "step": step, "num_iterations": meta.get("num_iterations"),
        "depth": meta["model_config"].get("n_layer"), "model_config": meta["model_config"],
        "param_counts": counts, "scaling_params": n_scaling,
        "flops_per_token": fpt, "tokens_trained": tokens, "total_flops": fpt * tokens if tokens else None,
        "param_data_ratio": tokens / n_scaling if tokens else None,
        "total_batch_size": batch, "max_seq_len": meta.get("max_seq_len"), "world_size": meta.get("world_size"),
        "training_seconds": seconds, "tokens_per_sec": tok_per_sec,
        # MFU needs the device peak: our trainers record peak_flops in the meta, nanochat's checkpoints do not.
        "mfu": clean(mfu), "mfu_note": None if mfu is not None else "not recorded in the checkpoint meta",
        "val_bpb": clean(meta.get("val_bpb")), "min_val_bpb": clean(loop.get("min_val_bpb")),
        "core_score": clean(meta.get("core_score", meta.get("core_metric"))),
        "files": [str(path)],
    }


def _throughput(meta: dict, step: int, batch: int | None, fpt: float) -> tuple:
    """(seconds, tok/s, MFU %) of the training. Our trainers record the very numbers their closing
    log line printed ("Training done: N steps in Xs, Y tok/s, MFU Z%"), the one source of truth.
    nanochat's checkpoints record only its steady-state time (the steps after the first
    UNTIMED_STEPS, i.e. step - UNTIMED_STEPS - 1 of them), from which the rate is derived."""
    recorded = meta.get("throughput")
    if recorded:
        return recorded["training_seconds"], recorded["tokens_per_sec"], recorded["mfu"]
    seconds = (meta.get("loop_state") or {}).get("total_training_time")
    timed_steps = step - UNTIMED_STEPS - 1
    tok_per_sec = timed_steps * batch / seconds if batch and timed_steps > 0 and seconds else None
    mfu = None
    if tok_per_sec and meta.get("peak_flops"):
        mfu = 100 * fpt * tok_per_sec / (meta["peak_flops"] * meta.get("world_size", 1))
    return seconds, tok_per_sec, mfu


def sft_section(model_tag: str, root: Path | None = None) -> dict:
    folder = settings.chatsft_checkpoints_dir(root) / model_tag
    found = _last_meta(folder, "chat_sft")
    if isinstance(found, str):
        return missing(f"no SFT model: {found}")
    meta, step, path = found
    loop = meta.get("loop_state") or {}
    return {"status": "ok", "checkpoint": str(path), "step": step, "num_iterations": meta.get("num_iterations"),
            "val_bpb": clean(meta.get("val_bpb")), "val_loss": clean(meta.get("val_loss")),
            "training_seconds": (meta.get("throughput") or {}).get("training_seconds",
                                                                    loop.get("total_training_time")),
            "total_batch_size": meta.get("total_batch_size"), "max_seq_len": meta.get("max_seq_len"),
            "base_model": f"{meta.get('base_model_tag')} step {meta.get('base_step')}" if meta.get("base_model_tag") else None,
            "mixture": meta.get("mixture") or {}, "conversations_too_long": meta.get("conversations_too_long"),
            "files": [str(path)]}


# ---------------------------------------------------------------- evaluations
def base_eval_section(model_tag: str, step: int | None, root: Path | None = None) -> dict:
    import json

    folder = settings.base_eval_dir(root)
    exact = folder / f"{model_tag}_{step:06d}.json" if step is not None else None
    found = (exact, step) if exact is not None and exact.is_file() else latest_step_file(folder, model_tag)
    if found is None:
        want = exact or folder / f"{model_tag}_<step>.json"
        reason = f"{want} is missing: CORE was not evaluated (run base_eval --eval core)"
        bundle = settings.eval_bundle_dir(root) / "core.yaml"
        if not bundle.is_file():
            reason += f"; the eval bundle {bundle} is missing too (base_eval downloads it; offline it cannot)"
        return missing(reason)
    path, eval_step = found
    data = json.loads(path.read_text(encoding="utf-8"))
    skipped = data.get("skipped") or []
    tasks = data.get("tasks", {})
    return {"status": "ok", "file": str(path), "step": eval_step, "stale": step is not None and eval_step != step,
            "core": clean(data.get("core")), "partial": bool(data.get("partial") or skipped),
            "skipped": {label: (tasks.get(label) or {}).get("reason", "task data missing") for label in skipped}
            if isinstance(skipped, list) else dict(skipped),
            "cropped_prompts": data.get("cropped_prompts", 0), "max_per_task": data.get("max_per_task"),
            "tasks": tasks, "files": [str(path)]}


def chat_eval_section(model_tag: str, source: str = "sft", root: Path | None = None) -> dict:
    import json

    folder = settings.chat_eval_dir(root)
    found = latest_step_file(folder, f"{source}_{model_tag}")
    if found is None:
        reason = f"{folder / f'{source}_{model_tag}_<step>.json'} is missing: chat evaluation was not run (chat_eval)"
        task_data = settings.task_data_dir(root)
        if not task_data.is_dir() or not any(task_data.iterdir()):
            reason += f"; no task data in {task_data} (offline the Hub cannot be reached)"
        return missing(reason)
    path, step = found
    data = json.loads(path.read_text(encoding="utf-8"))
    skipped = data.get("skipped") or {}
    return {"status": "ok", "file": str(path), "step": step, "tasks": data.get("tasks", {}),
            "chatcore": clean(data.get("chatcore")), "partial": bool(data.get("partial") or skipped),
            "skipped": skipped if isinstance(skipped, dict) else {t: "skipped" for t in skipped},
            "files": [str(path)]}

"""Every asset check: the specs each asset declares (AssetCheckSpec lists, by asset) and the builders
that turn what a materialization produced into AssetCheckResults. Blocking checks gate their
consumers (staleness.require_checks_passed); check names are what the UI, `status` and the main
job's terminal show.
"""
from __future__ import annotations

import math
from pathlib import Path

import dagster as dg

# Round trip and compression floor for the tokenizer check: a BPE tokenizer that compresses
# English below 1.5 bytes/token has (almost) no merges and would make training meaningless.
MIN_BYTES_PER_TOKEN = 1.5


SHARD_CHECKS = [dg.AssetCheckSpec(n, asset="shuffled_shards", blocking=True)
                for n in ("shards_not_empty", "row_groups_as_configured", "has_validation_shard")]


TOKENIZER_CHECKS = [dg.AssetCheckSpec(n, asset="tokenizer", blocking=True)
                    for n in ("round_trip", "bytes_per_token_above_floor")]


def shard_checks(shards_dir: Path, row_group_size: int) -> list[dg.AssetCheckResult]:
    import pyarrow.parquet as pq
    from nanochat_core.data.parquet_files import list_parquet_files

    files = list_parquet_files(shards_dir)  # raises, naming the folder, when it holds no shard
    rows = [pq.ParquetFile(f).metadata for f in files]
    empty = [f.name for f, m in zip(files, rows) if m.num_rows == 0]
    # Every row group but each shard's last holds exactly row_group_size documents.
    bad_groups = {f.name: sorted({m.row_group(i).num_rows for i in range(m.num_row_groups - 1)} - {row_group_size})
                  for f, m in zip(files, rows)}
    bad_groups = {name: sizes for name, sizes in bad_groups.items() if sizes}
    return [
        dg.AssetCheckResult(
            check_name="shards_not_empty", passed=not empty, metadata={"shards": len(files)},
            description=(f"{shards_dir}: shards with 0 documents: {', '.join(empty)}" if empty else
                         f"{len(files)} shards in {shards_dir}, none empty")),
        dg.AssetCheckResult(
            check_name="row_groups_as_configured", passed=not bad_groups,
            metadata={"row_group_size": row_group_size,
                      "shards_with_other_sizes": ", ".join(f"{n}: {v}" for n, v in bad_groups.items())},
            description=(f"{shards_dir}: row groups other than {row_group_size} documents (before each shard's "
                         f"last): " + "; ".join(f"{n} has {v}" for n, v in bad_groups.items())) if bad_groups else
                        f"every row group but each shard's last holds {row_group_size} documents"),
        dg.AssetCheckResult(
            check_name="has_validation_shard", passed=len(files) >= 2, metadata={"shards": len(files)},
            description=f"{shards_dir} holds {len(files)} shard(s); the last one is validation, and at least one "
                        "train shard must precede it"),
    ]


def tokenizer_checks(tok_dir: Path, shards_dir: Path) -> list[dg.AssetCheckResult]:
    from nanochat_core.data.parquet_files import iter_shard_texts
    from nanochat_core.tokenizer.bpe import Tokenizer

    file = tok_dir / "tokenizer.pkl"
    tok = Tokenizer.from_directory(tok_dir)
    sample = "".join(iter_shard_texts(split="val", data_dir=shards_dir, max_chars=50_000))
    try:
        ids = tok.encode(sample)
        decoded = tok.decode(ids)
    except BaseException as e:  # tiktoken panics (a BaseException) on a byte missing from the table
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        why = f"{file} cannot encode the validation text: {type(e).__name__}: {e}"
        return [dg.AssetCheckResult(check_name="round_trip", passed=False, description=why),
                dg.AssetCheckResult(check_name="bytes_per_token_above_floor", passed=False, description=why)]
    first_diff = next((i for i, (a, b) in enumerate(zip(decoded, sample)) if a != b), min(len(decoded), len(sample)))
    round_trips = decoded == sample
    bytes_per_token = len(sample.encode()) / max(1, len(ids))
    return [
        dg.AssetCheckResult(
            check_name="round_trip", passed=round_trips, metadata={"sample_chars": len(sample)},
            description=(f"{file}: decode(encode(text)) equals the {len(sample):,} characters of validation text"
                         if round_trips else f"{file}: decode(encode(text)) differs from the validation text at "
                                             f"character {first_diff}: {sample[first_diff:first_diff + 20]!r} became "
                                             f"{decoded[first_diff:first_diff + 20]!r}")),
        dg.AssetCheckResult(
            check_name="bytes_per_token_above_floor", passed=bytes_per_token >= MIN_BYTES_PER_TOKEN,
            metadata={"bytes_per_token": bytes_per_token, "floor": MIN_BYTES_PER_TOKEN},
            description=f"{file} compresses the validation text to {bytes_per_token:.3f} bytes/token "
                        f"({'at or above' if bytes_per_token >= MIN_BYTES_PER_TOKEN else 'below'} the floor "
                        f"{MIN_BYTES_PER_TOKEN})"),
    ]

BASE_MODEL_CHECKS = [dg.AssetCheckSpec(n, asset="base_model", blocking=True)
                     for n in ("finite_loss_and_val_bpb", "checkpoint_loads")]


def reported_loads_check(result: dg.MaterializeResult, name: str) -> dg.AssetCheckResult:
    """The check `name` that the training child reported with `result`: its saved checkpoint loads into a
    model (checked there, where torch is imported; children/pipes.py), the outcome as its description.
    Failed when the child reported none: a check nobody ran must not pass."""
    for reported in result.check_results or []:
        if reported.check_name == name:
            outcome = (reported.metadata or {}).get("outcome")
            return dg.AssetCheckResult(check_name=name, passed=reported.passed,
                                       description=str(getattr(outcome, "value", outcome)))
    return dg.AssetCheckResult(check_name=name, passed=False,
                               description=f"the training child reported no {name} check")


def uniform_guess_bpb(tok_dir: Path, shards_dir: Path, max_chars: int = 200_000) -> float:
    """Bits per byte of a model that gives every token of the vocabulary the same probability, on
    the validation text: log2(vocab) bits per token over that text's bytes per token. A trained
    model must beat it; one that does not has learned nothing (or diverged)."""
    from nanochat_core.data.parquet_files import iter_shard_texts
    from nanochat_core.tokenizer.bpe import Tokenizer

    tok = Tokenizer.from_directory(tok_dir)
    text = "".join(iter_shard_texts(split="val", data_dir=shards_dir, max_chars=max_chars))
    return len(tok.encode(text)) * math.log2(tok.get_vocab_size()) / max(1, len(text.encode()))


def metadata_number(metadata: dict, key: str) -> float | None:
    """A materialization's numeric metadata value (raw or wrapped in MetadataValue), None if absent or not a number."""
    value = metadata.get(key)
    value = getattr(value, "value", value)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def plausible_loss_check(metadata: dict, uniform_bpb: float) -> dg.AssetCheckResult:
    """finite_loss_and_val_bpb: final loss and val_bpb finite and above 0, val_bpb below a uniform guess."""
    loss, bpb = metadata_number(metadata, "final_loss"), metadata_number(metadata, "val_bpb")
    where = metadata.get("checkpoint")
    where = getattr(where, "value", where) or "the checkpoint"
    problems = [f"{name} is {value}" for name, value in (("final_loss", loss), ("val_bpb", bpb))
                if value is None or not math.isfinite(value) or value <= 0]
    if not problems and bpb >= uniform_bpb:
        problems.append(f"val_bpb {bpb:.4f} is not below {uniform_bpb:.4f}, the bpb of a uniform guess over the "
                        "vocabulary on the same validation text")
    description = (f"{where}: " + "; ".join(problems) + " (diverged? try a smaller learning rate or longer warmup)"
                   if problems else f"{where}: val_bpb {bpb:.4f} in (0, {uniform_bpb:.4f}), final loss {loss:.4f}")
    return dg.AssetCheckResult(check_name="finite_loss_and_val_bpb", passed=not problems, description=description,
                               metadata={"final_loss": str(loss), "val_bpb": str(bpb), "uniform_guess_bpb": uniform_bpb})


def base_model_checks(result: dg.MaterializeResult, uniform_bpb: float) -> list[dg.AssetCheckResult]:
    return [plausible_loss_check(dict(result.metadata or {}), uniform_bpb), reported_loads_check(result, "checkpoint_loads")]

SFT_MODEL_CHECKS = [dg.AssetCheckSpec(n, asset="sft_model", blocking=True)
                    for n in ("sft_checkpoint_loads", "sft_built_on_cell_base")]


def built_on_base_check(ckpt_dir: Path, step: int, base_dir: Path, tag: str) -> dg.AssetCheckResult:
    """sft_built_on_cell_base: the SFT checkpoint's meta names this cell's base (tag and last step)
    and has its architecture; a checkpoint fine-tuned from another cell's base would pass the load
    check yet put the wrong model's numbers in this cell's report card."""
    from nanochat_core.model import checkpoint as ckpt

    meta, base_step = ckpt.load_meta(ckpt_dir, step), ckpt.find_last_step(base_dir)
    base_config = ckpt.load_meta(base_dir, base_step)["model_config"]
    where = ckpt.meta_path(ckpt_dir, step)
    problems = []
    if (meta.get("base_model_tag"), meta.get("base_step")) != (tag, base_step):
        problems.append(f"fine-tuned from base {meta.get('base_model_tag')!r} step {meta.get('base_step')}, "
                        f"not this cell's {tag!r} step {base_step}")
    if meta.get("model_config") != base_config:
        problems.append(f"model_config {meta.get('model_config')} differs from the base's {base_config}")
    return dg.AssetCheckResult(check_name="sft_built_on_cell_base", passed=not problems,
                               description=f"{where}: " + ("; ".join(problems) if problems else
                                                           f"built on {base_dir} step {base_step}"))

RL_MODEL_CHECKS = [dg.AssetCheckSpec(name, asset="rl_model", blocking=True)
                   for name in ("rl_finite_loss", "rl_checkpoint_loads", "rl_reward_not_nan")]


def _value(metadata: dict, key: str):
    value = metadata.get(key)
    return getattr(value, "value", value)


def rl_model_checks(result: dg.MaterializeResult, ckpt_dir: Path, step: int) -> list[dg.AssetCheckResult]:
    """The three blocking checks of one RL run: its reported loss, its checkpoint, its recorded rewards."""
    from nanochat_core.model import checkpoint_layout as ckpt

    metadata = dict(result.metadata or {})
    loss = _value(metadata, "final_loss")
    finite = isinstance(loss, (int, float)) and math.isfinite(loss)
    history = ckpt.load_meta(ckpt_dir, step).get("rl_history") or {}
    values = [("mean reward", r["step"], r["mean_reward"]) for r in history.get("rewards", [])]
    values += [(f"pass@{j + 1}", p["step"], v) for p in history.get("pass_at_k", []) for j, v in enumerate(p["pass_at_k"])]
    bad = [f"{what} at step {s}: {v}" for what, s, v in values
           if not isinstance(v, (int, float)) or math.isnan(v)]
    if not values:
        bad = [f"{ckpt.meta_path(ckpt_dir, step)} records no rewards"]
    return [
        dg.AssetCheckResult(check_name="rl_finite_loss", passed=finite, description=f"final_loss {loss}"),
        reported_loads_check(result, "rl_checkpoint_loads"),
        dg.AssetCheckResult(check_name="rl_reward_not_nan", passed=not bad,
                            description="; ".join(bad[:5]) if bad else f"{len(values)} rewards and pass@k values, none NaN"),
    ]

SCALING_CHECKS = [dg.AssetCheckSpec("csv_matches_cells", asset="scaling_results", blocking=False),
                  # ERROR but not blocking: a grid without a law is still a result (and the ladder's input).
                  dg.AssetCheckSpec("law_is_credible", asset="scaling_results", blocking=False,
                                    description="The fit found a law: >= 3 bracketed budgets over >= half a decade, "
                                                "plausible exponents and ratio.")]

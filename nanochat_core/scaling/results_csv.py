"""The scaling-sweep results CSV: nanochat's fourteen columns, our param_data_ratio and the cell's shape.

One row per (FLOPs budget, depth) training run. The file is filled from recorded metrics (never
scraped from logs), and the reader accepts nanochat's own files too: the extra columns
may be absent and any cell may be empty (nanochat's sweep left the params columns blank).
The shape columns (vocab, context, aspect ratio, head dim, window pattern) are what the cell's
checkpoint meta recorded: the analysis names depths from them, never from assumed defaults.
The analysis lives in fit.py, the picture in plot.py.
"""
from __future__ import annotations

import csv
import math
import numbers
from pathlib import Path

from nanochat_core.common.atomic import atomic_path

# nanochat's header, exactly and in this order (runs/scaling_laws.sh).
NANOCHAT_COLUMNS = [
    "flops_budget", "depth", "model_dim", "params_wte", "params_value_embeds", "params_lm_head",
    "params_transformer", "params_scalars", "params_total", "num_iterations", "tokens_trained",
    "val_bpb", "core_score", "train_time_sec",
]
# Ours adds the tokens:params ratio so a reader sees where each run sits without arithmetic, and the
# shape the cell trained with (so N and FLOPs per token at another depth can be counted for this family).
SHAPE_COLUMNS = ["vocab_size", "max_seq_len", "aspect_ratio", "head_dim", "window_pattern"]
SCALING_COLUMNS = NANOCHAT_COLUMNS + ["param_data_ratio"] + SHAPE_COLUMNS

INT_COLUMNS = {"depth", "model_dim", "params_wte", "params_value_embeds", "params_lm_head", "params_transformer",
               "params_scalars", "params_total", "num_iterations", "tokens_trained", "vocab_size", "max_seq_len",
               "aspect_ratio", "head_dim"}
STRING_COLUMNS = {"window_pattern"}
FLOAT_COLUMNS = {"flops_budget", "val_bpb", "core_score", "train_time_sec", "param_data_ratio"}
# Without these a row cannot be placed on an isoFLOP curve at all; everything else may be blank.
REQUIRED_COLUMNS = ["flops_budget", "depth", "val_bpb"]


class ScalingCSVError(ValueError):
    """A results CSV that cannot be read; the message names the file (and line/column)."""


def effective_params(row: dict) -> int | None:
    """N for scaling laws: transformer matrices + lm_head (embeddings excluded), None if unknown."""
    pt, pl = row.get("params_transformer"), row.get("params_lm_head")
    return None if pt is None or pl is None else int(pt) + int(pl)


def param_data_ratio(row: dict) -> float | None:
    n, tokens = effective_params(row), row.get("tokens_trained")
    return None if not n or tokens is None else tokens / n


def shape_from_meta(meta: dict) -> dict:
    """The shape columns from a base checkpoint's meta (model_config + the run's user_config)."""
    config, flags = meta["model_config"], meta.get("user_config") or {}
    return {"vocab_size": config["vocab_size"], "max_seq_len": config["sequence_len"],
            "aspect_ratio": flags.get("aspect_ratio"), "head_dim": config["n_embd"] // config["n_head"],
            "window_pattern": config["window_pattern"]}


def row_from_training(flops_budget: float, depth: int, model_dim: int, summary: dict, shape: dict | None = None) -> dict:
    """One CSV row from train_base's returned summary (recorded metrics, never log greps: nanochat's runs/scaling_laws.sh grepped its logs and left the params columns empty).
    core_score is the summary's latest CORE (None, an empty cell, when no CORE ran); shape is
    shape_from_meta of the cell's checkpoint (empty cells when not given)."""
    counts = summary["param_counts"]
    row = {
        "flops_budget": float(flops_budget), "depth": depth, "model_dim": model_dim,
        "params_wte": counts["wte"], "params_value_embeds": counts["value_embeds"], "params_lm_head": counts["lm_head"],
        "params_transformer": counts["transformer_matrices"], "params_scalars": counts["scalars"],
        "params_total": counts["total"], "num_iterations": summary["step"],
        "tokens_trained": summary["tokens_trained"], "val_bpb": summary.get("val_bpb"), "core_score": summary.get("core_score"),
        # nanochat's time excludes the warm-up steps; fall back to the full wall time if that is all we have.
        "train_time_sec": summary.get("total_training_time") or summary.get("training_seconds"),
    }
    row["param_data_ratio"] = param_data_ratio(row)
    row.update({c: (shape or {}).get(c) for c in SHAPE_COLUMNS})
    return row


def _format_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise ValueError(f"scaling cells are numbers, got the boolean {value}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):  # float, numpy floats
        value = float(value)
        # Shortest lossless form; budgets print compactly (1e+18).
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def write_scaling_csv(rows: list[dict], path: str | Path) -> Path:
    """Write rows (dicts keyed by column name; missing keys and None become empty cells) atomically.

    param_data_ratio is computed from the row when it does not carry one.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(SCALING_COLUMNS)
        for row in rows:
            unknown = {k for k in row if not k.startswith("_")} - set(SCALING_COLUMNS)  # _line etc. are ours
            if unknown:
                raise ValueError(f"scaling row has unknown columns {sorted(unknown)} (columns: {SCALING_COLUMNS})")
            full = dict(row)
            if full.get("param_data_ratio") is None:
                full["param_data_ratio"] = param_data_ratio(full)
            writer.writerow([_format_cell(full.get(c)) for c in SCALING_COLUMNS])
    return path


def _parse_cell(text: str, column: str, path: Path, line: int):
    text = text.strip()
    if text == "" or text.lower() in ("none", "null", "na", "n/a"):
        return None
    if column in STRING_COLUMNS:
        return text
    try:
        value = float(text)
    except ValueError:
        raise ScalingCSVError(f"{path}, line {line}, column {column!r}: {text!r} is not a number") from None
    if column in INT_COLUMNS:
        # nanochat may write counts as floats (1.2e9); a NaN count is simply unknown.
        return None if not math.isfinite(value) else int(round(value))
    return value


def read_scaling_csv(path: str | Path) -> list[dict]:
    """Rows as dicts over SCALING_COLUMNS: ints for counts, floats otherwise, None for empty cells.

    Columns other than flops_budget/depth/val_bpb may be missing (read as None); unknown extra
    columns are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scaling results CSV {path} not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ScalingCSVError(f"{path} is empty (expected the header {','.join(NANOCHAT_COLUMNS)})")
        header = [h.strip() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ScalingCSVError(f"{path}: missing column(s) {', '.join(missing)} "
                                  f"(header is {','.join(header)}; expected nanochat's {','.join(NANOCHAT_COLUMNS)})")
        index = {c: header.index(c) for c in SCALING_COLUMNS if c in header}
        rows = []
        for line, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue  # blank lines (e.g. a trailing newline pair) carry nothing
            row = {}
            for column in SCALING_COLUMNS:
                i = index.get(column)
                row[column] = _parse_cell(cells[i], column, path, line) if i is not None and i < len(cells) else None
            row["_line"] = line  # where it came from, so warnings can point at it
            rows.append(row)
    return rows

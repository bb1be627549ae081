"""Presets: the grid (depths x FLOP budgets) and per-stage settings, read from a TOML file.

A preset is data, never code: adding a depth or a budget is an edit of the file. `--preset` (or
NANOCHAT_PRESET) names a shipped preset (`demo`, `scaling`, `speedrun`) or a path to a user's file.
Unknown keys are refused by name so a typo never silently falls back to a default.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from nanochat_core.common import settings
from nanochat_core.train.args import build_parser
from nanochat_pipeline.presets.ladder_bounds import ladder_bounds
from nanochat_pipeline.presets.launch_table import LaunchError, LaunchSpec, parse_launch

SHIPPED_DIR = Path(__file__).parent  # the shipped TOML files sit beside this module
DEFAULT_PRESET = "demo"
PRESET_ENV = "NANOCHAT_PRESET"

CORPUS_KEYS = {"source", "max_bytes", "chars_per_shard", "row_group_size", "num_files", "input", "text_field", "seed"}
TOKENIZER_KEYS = {"vocab_size", "max_chars", "doc_cap"}
SYNTHETIC_KEYS = {"num", "seed", "backend", "model", "base_url", "workers"}
# offline: true never reaches for the eval bundle or the Hub, false always does, "auto" (the default)
# probes both first (5 s at most); task_data: a folder of release files (default <preset root>/task_data);
# core_max_per_task: CORE examples per task (-1 = all); chat_max_new_tokens: chat_eval's -m; chat_cells:
# the grid cells the main job fine-tunes and evaluates.
EVALUATION_KEYS = {"offline", "task_data", "core_max_per_task", "chat_tasks", "chat_max_problems", "chat_max_new_tokens",
                   "chat_cells"}
OFFLINE_CHOICES = (True, False, "auto")


def check_evaluation(path: Path, evaluation: dict) -> None:
    """[evaluation] values of the right kind, refused by key name otherwise."""
    offline = evaluation.get("offline", "auto")
    if not any(offline is c or offline == c and type(offline) is type(c) for c in OFFLINE_CHOICES):
        raise PresetError(f"{path} [evaluation] offline: {offline!r} is none of true, false, \"auto\"")
    for key in ("core_max_per_task", "chat_max_problems", "chat_max_new_tokens"):
        value = evaluation.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value == 0 or value < -1):
            raise PresetError(f"{path} [evaluation] {key}: {value!r} is not a positive integer (or -1 = all)")


# Flags the pipeline sets itself from the grid cell; a preset may not override them.
CELL_FLAGS = {"depth", "target_flops", "model_tag", "resume_from_step"}
TOP_KEYS = {"name", "depths", "flops", "schedule_cron", "corpus", "tokenizer", "synthetic", "train", "sft", "evaluation",
            "ladder", "rl"}


class PresetError(ValueError):
    """A preset that cannot be used; the message names the file and the key at fault."""


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    depth_keys: list[str]          # partition keys of the depth dimension: "d4"
    flops_keys: list[str]          # partition keys of the flops dimension, as written: "2.15e18"
    schedule_cron: str
    corpus: dict = field(default_factory=dict)
    tokenizer: dict = field(default_factory=dict)
    synthetic: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)   # base_train overrides (python names)
    nproc_per_node: int = 1
    sft: dict = field(default_factory=dict)     # chat_sft overrides (python names)
    evaluation: dict = field(default_factory=dict)
    launch: LaunchSpec = field(default_factory=LaunchSpec)  # [launch]: where cells run (presets/launch_table.py)
    rl: dict = field(default_factory=dict)      # chat_rl overrides (python names)
    rl_cells: list = field(default_factory=list)  # [rl] rl_cells: the chat cells the main job runs RL for
    ladder: dict = field(default_factory=dict)  # the scaling ladder's bounds (ladder_bounds.py), defaults filled in

    @property
    def chat_cells(self) -> list[str]:
        """Grid cells the main job fine-tunes and evaluates: [evaluation] chat_cells, else the largest one."""
        return list(self.evaluation.get("chat_cells") or [f"{self.depth_keys[-1]}|{self.flops_keys[-1]}"])

    @property
    def root(self) -> Path:
        """$NANOCHAT_BASE_DIR/pipeline/<preset>/, laid out like $NANOCHAT_BASE_DIR."""
        return settings.base_dir() / "pipeline" / self.name


def resolve_preset_path(name_or_path: str) -> Path:
    shipped = SHIPPED_DIR / f"{name_or_path}.toml"
    if shipped.is_file():
        return shipped
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    names = sorted(p.stem for p in SHIPPED_DIR.glob("*.toml"))
    raise PresetError(f"preset {name_or_path!r}: neither a shipped preset ({', '.join(names)}) nor an existing file")


def _check_keys(where: str, table: dict, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PresetError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _flops_key(path: Path, value) -> str:
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        raise PresetError(f"{path}: flops entry {value!r} is not a number (write e.g. \"1e13\" or \"2.15e18\")") from None
    if not number > 0:
        raise PresetError(f"{path}: flops entry {value!r} must be positive")
    if any(bad in text for bad in ("|", ",", "[", "]", "...")):
        raise PresetError(f"{path}: flops entry {value!r} contains a character partition keys cannot hold")
    return text


def load_preset(name_or_path: str) -> Preset:
    path = resolve_preset_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise PresetError(f"{path}: not valid TOML: {e}") from None
    launch_table = data.pop("launch", {})  # checked below by launch_table.py, once nproc_per_node is known
    _check_keys(str(path), data, TOP_KEYS)
    for section, allowed in (("corpus", CORPUS_KEYS), ("tokenizer", TOKENIZER_KEYS), ("synthetic", SYNTHETIC_KEYS),
                             ("evaluation", EVALUATION_KEYS)):
        _check_keys(f"{path} [{section}]", data.get(section, {}), allowed)
    train = dict(data.get("train", {}))
    nproc = int(train.pop("nproc_per_node", 1))
    try:
        launch = parse_launch(launch_table, nproc)
    except LaunchError as e:
        raise PresetError(f"{path} [launch] {e}") from None
    flag_names = {a.dest for a in build_parser()._actions if a.dest != "help"}
    _check_keys(f"{path} [train] (base_train flags, python names)", train, flag_names - CELL_FLAGS)
    backend = data.get("synthetic", {}).get("backend", "offline")
    if backend not in ("offline", "api"):
        raise PresetError(f"{path} [synthetic] backend: {backend!r} is neither 'offline' nor 'api'")
    sft = dict(data.get("sft", {}))
    if sft:
        _check_keys(f"{path} [sft] (chat_sft flags, python names)", sft, sft_flag_names() - SFT_PIPELINE_FLAGS)
    depths = data.get("depths") or []
    if not depths or not all(isinstance(d, int) and d > 0 for d in depths):
        raise PresetError(f"{path}: depths must be a non-empty list of positive integers, got {depths!r}")
    flops = data.get("flops") or []
    if not flops:
        raise PresetError(f"{path}: flops must be a non-empty list of budgets such as [\"1e13\"]")
    name = data.get("name") or path.stem
    if not name.replace("-", "").replace("_", "").isalnum():
        raise PresetError(f"{path}: name {name!r} must be letters, digits, '-' or '_' (it names a folder)")
    evaluation = data.get("evaluation", {})
    check_evaluation(path, evaluation)
    depth_keys, flops_keys = [f"d{d}" for d in depths], [_flops_key(path, f) for f in flops]
    try:
        ladder = ladder_bounds(str(path), data.get("ladder", {}), depths, [float(f) for f in flops_keys])
    except ValueError as e:
        raise PresetError(str(e)) from None
    grid = {f"{d}|{f}" for d in depth_keys for f in flops_keys}
    stray = [c for c in evaluation.get("chat_cells", []) if c not in grid]
    if stray:
        raise PresetError(f"{path} [evaluation] chat_cells: {stray} not in the grid (cells look like {sorted(grid)[0]!r})")
    rl, rl_cells = rl_settings(path, data.get("rl", {}), evaluation.get("chat_cells") or [f"{depth_keys[-1]}|{flops_keys[-1]}"])
    return Preset(
        name=name, path=path, depth_keys=depth_keys, flops_keys=flops_keys,
        schedule_cron=data.get("schedule_cron", "0 3 * * 0"), corpus=data.get("corpus", {}),
        tokenizer=data.get("tokenizer", {}), synthetic=data.get("synthetic", {}), train=train, nproc_per_node=nproc,
        sft=sft, evaluation=evaluation, launch=launch, rl=rl, rl_cells=rl_cells, ladder=ladder,
    )


# chat_sft flags the pipeline sets itself (the cell's tags, the data it wires in, resuming).
SFT_PIPELINE_FLAGS = {"model_tag", "model_step", "output_tag", "resume_from_step", "identity", "task_data", "jsonl"}


# chat_rl flags the pipeline sets itself (the cell's tag, the task data it wires in, resuming).
RL_PIPELINE_FLAGS = {"model_tag", "model_step", "resume_from_step", "task_data"}


def rl_settings(path: Path, table: dict, chat_cells: list[str]) -> tuple[dict, list[str]]:
    """([rl] chat_rl flags, rl_cells): RL starts from a cell's SFT model, so an RL cell must be a chat cell."""
    from nanochat_core.train.rl_args import build_rl_parser

    rl = dict(table)
    rl_cells = rl.pop("rl_cells", [])
    if not isinstance(rl_cells, list) or not all(isinstance(c, str) for c in rl_cells):
        raise PresetError(f"{path} [rl] rl_cells: expected a list of cells such as [\"d3|1e11\"], got {rl_cells!r}")
    stray = [c for c in rl_cells if c not in chat_cells]
    if stray:
        raise PresetError(f"{path} [rl] rl_cells: {stray} are not chat cells ({chat_cells}): RL starts from a cell's SFT model")
    flags = {a.dest for a in build_rl_parser()._actions if a.dest != "help"}
    _check_keys(f"{path} [rl] (chat_rl flags, python names, and rl_cells)", rl, flags - RL_PIPELINE_FLAGS)
    return rl, rl_cells


def sft_flag_names() -> set[str]:
    from nanochat_core.train.sft_args import build_sft_parser

    return {a.dest for a in build_sft_parser()._actions if a.dest != "help"}


def active_preset() -> Preset:
    """The preset named by NANOCHAT_PRESET (the `run` command sets it from --preset), else demo."""
    return load_preset(os.environ.get(PRESET_ENV) or DEFAULT_PRESET)

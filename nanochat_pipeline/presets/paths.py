"""Where a preset's stages put their files, and the settings every stage's child shares: one place, so
an asset, the `run` command and `status` never spell a path differently."""
from __future__ import annotations

from pathlib import Path

from nanochat_core.common import settings
from nanochat_pipeline.presets import Preset


def corpus_file(preset: Preset) -> Path:
    return preset.root / "raw_corpus" / "documents.jsonl"


def tokenizer_files(tok_dir: Path) -> list[Path]:
    return [tok_dir / "tokenizer.pkl", tok_dir / "token_bytes.pt"]


def results_csv(preset: Preset) -> Path:
    return preset.root / f"scaling_laws_results_{preset.name}" / "results.csv"


def task_data_dir(preset: Preset, override: str | None = None) -> Path:
    configured = override or preset.evaluation.get("task_data")
    return Path(configured).expanduser() if configured else settings.task_data_dir(preset.root)


def device_type(preset: Preset) -> str:
    return str(preset.train.get("device_type", "auto"))

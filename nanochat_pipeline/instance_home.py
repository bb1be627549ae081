"""DAGSTER_HOME: $NANOCHAT_BASE_DIR/pipeline/dagster_home unless set, seeded with the shipped dagster.yaml."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from nanochat_core.common import settings

SHIPPED_DAGSTER_YAML = Path(__file__).parent / "dagster.yaml"


def ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or settings.base_dir() / "pipeline" / "dagster_home").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(SHIPPED_DAGSTER_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def ensure_training_pool(instance, limit: int = 1) -> None:
    """Create the training pool with its limit (what `dagster instance concurrency set training 1`
    does). dagster.yaml's default_limit alone let two queued runs start together before the pool
    existed (seen in tests/test_pipeline_ui.py), so the limit is set explicitly."""
    from nanochat_pipeline.assets.training import TRAINING_POOL

    if TRAINING_POOL not in instance.event_log_storage.get_concurrency_keys():
        instance.event_log_storage.set_concurrency_slots(TRAINING_POOL, limit)

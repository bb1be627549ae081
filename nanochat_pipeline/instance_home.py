"""DAGSTER_HOME: $NANOCHAT_BASE_DIR/pipeline/dagster_home unless set, seeded with the shipped dagster.yaml."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from nanochat_core import settings

SHIPPED_DAGSTER_YAML = Path(__file__).parent / "dagster.yaml"


def ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or settings.base_dir() / "pipeline" / "dagster_home").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(SHIPPED_DAGSTER_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home

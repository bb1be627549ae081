"""DAGSTER_HOME: $NANOCHAT_BASE_DIR/pipeline/dagster_home unless set; the shipped (SQLite) dagster.yaml is
copied there only when the folder has none, so a dagster.yaml put there (deploy/postgres/) is used as it is."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from nanochat_core.common import settings

TRAINING_POOL = "training"  # one training run at a time on a machine's accelerators (dagster.yaml)
SHIPPED_DAGSTER_YAML = Path(__file__).parent / "dagster.yaml"


def prepare_dagster_home() -> tuple[Path, str]:
    """DAGSTER_HOME made ready and checked (storage.preflight, NANOCHAT_TRAINING_SLOTS) before
    anything else is written; returns it and a line saying which storage it is on."""
    from nanochat_pipeline.instance.storage import InstanceConfigError, preflight

    home = ensure_dagster_home()
    try:
        training_slots()
    except ValueError as e:
        raise InstanceConfigError(str(e)) from None
    return home, preflight(home)


def ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or settings.base_dir() / "pipeline" / "dagster_home").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # never over a dagster.yaml someone put there
        partial = home / "dagster.yaml.partial"
        shutil.copyfile(SHIPPED_DAGSTER_YAML, partial)
        os.replace(partial, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


TRAINING_SLOTS_ENV = "NANOCHAT_TRAINING_SLOTS"


def training_slots() -> int | None:
    """NANOCHAT_TRAINING_SLOTS: how many training cells may run at once (None when unset)."""
    text = os.environ.get(TRAINING_SLOTS_ENV)
    if text is None or text == "":
        return None
    try:
        slots = int(text)
    except ValueError:
        slots = 0
    if slots < 1:
        raise ValueError(f"{TRAINING_SLOTS_ENV}={text!r}: must be a whole number of at least 1")
    return slots


def ensure_training_pool(instance) -> int:
    """Set the training pool's limit (what `dagster instance concurrency set training N` does) and return it.

    The limit lives in the instance's database, so every worker sharing it obeys one number:
    NANOCHAT_TRAINING_SLOTS when set, else the limit the pool has (an operator's `dagster instance
    concurrency set`), else 1.
    dagster.yaml's default_limit alone let two queued runs start together before the pool existed
    (seen in tests/test_pipeline_ui.py), so the limit is set explicitly."""
    storage = instance.event_log_storage
    wanted = training_slots()
    if wanted is None:
        if TRAINING_POOL in storage.get_concurrency_keys():
            return storage.get_concurrency_info(TRAINING_POOL).slot_count
        wanted = 1
    storage.set_concurrency_slots(TRAINING_POOL, wanted)
    return wanted

"""DAGSTER_HOME: $NANOCHAT_BASE_DIR/pipeline/dagster_home unless set; the shipped (SQLite) dagster.yaml is
copied there only when the folder has none, so a dagster.yaml put there (deploy/postgres/) is used as it is."""
from __future__ import annotations

import math
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


def ensure_training_pool(instance, default: int = 1) -> int:
    """Set the training pool's limit (what `dagster instance concurrency set training N` does) and return it.

    The limit lives in the instance's database, so every worker sharing it obeys one number:
    NANOCHAT_TRAINING_SLOTS when set, else the limit the pool has (an operator's `dagster instance
    concurrency set`, or an earlier run's), else `default` (default_training_slots for the preset).
    dagster.yaml's default_limit alone let two queued runs start together before the pool existed
    (seen in tests/test_pipeline_ui.py), so the limit is set explicitly."""
    wanted = training_slots()
    if wanted is None:
        limit = pool_limit(instance)
        if limit is not None:
            return limit
        wanted = default
    instance.event_log_storage.set_concurrency_slots(TRAINING_POOL, wanted)
    return wanted


def pool_limit(instance) -> int | None:
    """The training pool's limit in the instance's database; None before any was set."""
    storage = instance.event_log_storage
    if TRAINING_POOL not in storage.get_concurrency_keys():
        return None
    return storage.get_concurrency_info(TRAINING_POOL).slot_count


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# Model width a CPU thread pays for. Measured only at the demo's widths (12..48): two cells side by side
# at one thread each trained the grid 1.67x faster than one at a time on two threads
# (benchmarks/bench_demo_cells.py); wider cells are assumed to want a thread per WIDTH_PER_THREAD.
WIDTH_PER_THREAD = 128


def default_training_slots(device_type: str, widest_model_dim: int, cores: int | None = None) -> int:
    """How many cells train at once when nobody said: one on an accelerator (a cell takes its devices);
    on a CPU as many as the cores allow with each cell given the threads its width can use
    (cells x threads per cell <= cores)."""
    if device_type != "cpu":
        return 1
    threads = max(1, math.ceil(widest_model_dim / WIDTH_PER_THREAD))
    return max(1, (cores or available_cores()) // threads)


def cell_threads_env(instance) -> dict:
    """OMP_NUM_THREADS for a training child while the pool lets several cells train at once: the cores
    shared out among them. Nothing when one trains at a time (torch's own default) or it is set already."""
    slots = pool_limit(instance) or 1
    if slots < 2 or "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, available_cores() // slots))}

"""Experiment tracking: wandb when `--run` names a run, nothing when it is 'dummy' (nanochat's rule)."""
from __future__ import annotations


class DummyTracker:
    def log(self, data: dict) -> None:
        pass

    def finish(self) -> None:
        pass


def check_tracking_available(run: str) -> None:
    """Fail before any work when a wandb run is asked for but wandb is not installed."""
    if run == "dummy":
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise RuntimeError(f"--run {run!r} logs to wandb, which is not installed: `pip install wandb`, "
                           "or pass --run dummy to train without it") from None


def make_tracker(run: str, config: dict, is_master: bool, project: str = "nanochat"):
    if run == "dummy" or not is_master:
        return DummyTracker()
    import wandb

    return wandb.init(project=project, name=run, config=config)

"""Where base_train and base_eval find the CORE metric.

CORE (DCLM's in-context tasks, as nanochat's nanochat/core_eval.py) is `nanochat_core.evaluation.core.evaluate_model(model, tokenizer, device, max_per_task,
...) -> {"core_metric": float | None, "partial": bool, ...}`. An install without it (a trimmed copy of the
core) says so plainly and carries on: no crash, no made-up number. Only the absence of that module
itself reads as "not installed": any other import error inside it is a bug and propagates.
"""
from __future__ import annotations

CORE_MODULE = "nanochat_core.evaluation.core"
NOT_AVAILABLE = f"CORE metric is not available ({CORE_MODULE} is not installed)"


def is_absent(error: ModuleNotFoundError, module: str) -> bool:
    """True when `error` says that `module` (or a package holding it) is missing, not something it imports."""
    return error.name is not None and (module == error.name or module.startswith(error.name + "."))


def find_core_evaluator():
    """The CORE evaluation function, or None when the evaluation code is not installed."""
    try:
        from nanochat_core.evaluation.core import evaluate_model
    except ModuleNotFoundError as e:
        if not is_absent(e, CORE_MODULE):
            raise
        return None
    return evaluate_model

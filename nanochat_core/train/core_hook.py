"""Where base_train and base_eval find the CORE metric.

CORE (DCLM's in-context tasks, as nanochat's nanochat/core_eval.py) is `nanochat_core.evaluation.core.evaluate_model(model, tokenizer, device, max_per_task,
...) -> {"core_metric": float | None, "partial": bool, ...}`. An install without it (a trimmed copy of the
core) says so plainly and carries on: no crash, no made-up number.
"""
from __future__ import annotations

NOT_AVAILABLE = "CORE metric is not available (nanochat_core.evaluation.core is not installed)"


def find_core_evaluator():
    """The CORE evaluation function, or None when the evaluation code is not installed."""
    try:
        from nanochat_core.evaluation.core import evaluate_model
    except ImportError:
        return None
    return evaluate_model

"""Where base_train and base_eval find the CORE metric.

CORE (facts §6) comes with the evaluation issue as `nanochat_core.evaluation.core.evaluate_model(
model, tokenizer, device, max_per_task) -> {"core_metric": float, ...}`. Until that module exists,
runs that ask for CORE say so plainly and carry on: no crash, no made-up number.
"""
from __future__ import annotations

NOT_AVAILABLE = "CORE metric is not available yet (it comes with the evaluation issue)"


def find_core_evaluator():
    """The CORE evaluation function, or None when the evaluation code is not installed yet."""
    try:
        from nanochat_core.evaluation.core import evaluate_model
    except ImportError:
        return None
    return evaluate_model

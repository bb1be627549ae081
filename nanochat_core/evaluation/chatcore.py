"""ChatCORE during SFT (chat_sft's --chatcore-every): all five chat tasks, capped for speed.

nanochat's caps: the categorical tasks (ARC, MMLU) at --chatcore-max-cat problems (-1 = all; one
forward per batch makes them cheap), the generative ones (GSM8K, HumanEval) at
--chatcore-max-sample, greedy, 512 new tokens. ChatCORE is None (and partial True) unless every
task ran; the per-task numbers are returned either way.
"""
from __future__ import annotations

from nanochat_core.evaluation.chat_eval import evaluate_chat
from nanochat_core.tasks.registry import CHATCORE_TASKS


def chatcore(model, tokenizer, device, task_data=None, max_cat: int = -1, max_sample: int = 24, batch_size: int = 8,
             log=print, context: int | None = None) -> dict:
    """{"chatcore": float | None, "partial": bool, "tasks": {...}, "skipped": {name: reason}}."""
    caps = {"categorical": None if max_cat < 0 else max_cat, "generative": None if max_sample < 0 else max_sample}
    result = evaluate_chat(model, tokenizer, device, list(CHATCORE_TASKS), task_data=task_data, batch_size=batch_size,
                           log=log, max_problems_by_type=caps, context=context)
    return {"chatcore": result["chatcore"], "partial": result["partial"], "tasks": result["tasks"],
            "skipped": result["skipped"]}

"""Chat tasks by the names the command lines use (chat_eval's `-a ARC-Easy|GSM8K`, chat_sft's mixture).

CHATCORE_TASKS are nanochat's five (ChatCORE is their mean centered accuracy; chat_eval runs them
when no task is named); EVAL_TASKS adds our generated Arithmetic test split, which needs no data
at all: the evaluation that still has numbers with no network.
"""
from __future__ import annotations

from nanochat_core.tasks.arc import ARC
from nanochat_core.tasks.arithmetic import Arithmetic
from nanochat_core.tasks.gsm8k import GSM8K
from nanochat_core.tasks.humaneval import HumanEval
from nanochat_core.tasks.mmlu import MMLU
from nanochat_core.tasks.smoltalk import SmolTalk

# the chat_eval tasks, in nanochat's order, each built on its evaluation split
EVAL_TASKS = {
    "ARC-Easy": lambda task_data: ARC("ARC-Easy", "test", task_data),
    "ARC-Challenge": lambda task_data: ARC("ARC-Challenge", "test", task_data),
    "MMLU": lambda task_data: MMLU("test", task_data),
    "GSM8K": lambda task_data: GSM8K("test", task_data),
    "HumanEval": lambda task_data: HumanEval(task_data),
}
CHATCORE_TASKS = tuple(EVAL_TASKS)
EVAL_TASKS["Arithmetic"] = lambda task_data: Arithmetic("test")  # generated: no task data read

# ChatCORE centres each task on its random-guess accuracy: 1/4 for the 4-choice sets, 0 when generative
BASELINES = {"ARC-Easy": 0.25, "ARC-Challenge": 0.25, "MMLU": 0.25, "GSM8K": 0.0, "HumanEval": 0.0,
             "Arithmetic": 0.0}


def load_eval_task(name: str, task_data=None):
    if name not in EVAL_TASKS:
        raise ValueError(f"unknown chat task {name!r}; choose from {', '.join(EVAL_TASKS)}")
    return EVAL_TASKS[name](task_data)


__all__ = ["ARC", "Arithmetic", "GSM8K", "HumanEval", "MMLU", "SmolTalk", "EVAL_TASKS", "CHATCORE_TASKS", "BASELINES",
           "load_eval_task"]

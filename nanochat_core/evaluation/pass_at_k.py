"""pass@1..k of a generative task, nanochat's chat_rl evaluation.

Per problem, k completions are sampled (seeded as every generative evaluation here: chat_generative),
each graded by task.evaluate; the problem counts for pass@j when any of its first j samples passes.
This returns counts for the given problems; the caller sums them over processes and divides by the
number of problems, so a torchrun split gives the one-process numbers.
"""
from __future__ import annotations

from nanochat_core.evaluation.chat_categorical import crop_left
from nanochat_core.evaluation.chat_generative import sample_completions
from nanochat_core.tokenizer.chat_render import render_for_completion


def pass_at_k_counts(model, tokenizer, task, indices, k: int, temperature: float, top_k: int, max_new_tokens: int,
                     context: int) -> list[int]:
    """[problems solved within the first j samples for j = 1..k] over task[i] for i in indices."""
    counts = [0] * k
    for i in indices:
        conversation = task[i]
        prompt, _ = crop_left(render_for_completion(tokenizer, conversation), context)
        completions = sample_completions(model, tokenizer, prompt, k, temperature, top_k, max_new_tokens, batch_size=k)
        outcomes = [bool(task.evaluate(conversation, c)) for c in completions]
        for j in range(k):
            counts[j] += any(outcomes[:j + 1])
    return counts


def format_pass_at_k(step: int, rates: list[float]) -> str:
    """nanochat's line: `Step 60 | Pass@1: 0.1234, Pass@2: 0.2345, ...`."""
    return f"Step {step} | " + ", ".join(f"Pass@{j + 1}: {r:.4f}" for j, r in enumerate(rates))

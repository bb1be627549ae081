"""Generative chat scoring (GSM8K, HumanEval): sample answers, grade each, pass@n per problem.

nanochat's way: per problem, the prompt (rendered up to <|assistant_start|>) is prefilled once and
`num_samples` completions are drawn from it at the given temperature/top-k, with the calculator
tool on (chat.tools: a GSM8K answer may compute through <|python_start|>...); each completion is
graded by task.evaluate and the problem counts as solved when any sample passes. Samples are drawn
in batches of at most `batch_size` rows, batch k of every problem seeded 42 + k (nanochat seeds
each problem's generation with 42): a problem's samples depend on that problem alone, not on the
problems scored before it, so runs are reproducible and a torchrun split draws the same samples.
A prompt longer than the model's context is cropped from the left and counted.
"""
from __future__ import annotations

from nanochat_core.tokenizer.chat_render import render_for_completion
from nanochat_core.chat.tools import complete
from nanochat_core.evaluation.chat_categorical import crop_left

SEED = 42


def sample_completions(model, tokenizer, prompt: list[int], num_samples: int, temperature: float, top_k: int,
                       max_new_tokens: int, batch_size: int) -> list[str]:
    out: list[str] = []
    for k, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        out += complete(model, tokenizer, prompt, max_new_tokens, temperature=temperature, top_k=top_k,
                        seed=SEED + k, num_samples=n)
    return out


def run_generative(model, tokenizer, task, indices: list[int], num_samples: int, temperature: float, top_k: int,
                   max_new_tokens: int, batch_size: int, context: int, progress=None) -> dict:
    """Score task[i] for i in indices; {num_problems, num_correct, num_samples, samples_passed,
    cropped_prompts}. `progress(done, correct)` is called after each problem."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    correct = cropped = passed_samples = done = 0
    for i in indices:
        conversation = task[i]
        prompt, was_cropped = crop_left(render_for_completion(tokenizer, conversation), context)
        cropped += was_cropped
        completions = sample_completions(model, tokenizer, prompt, num_samples, temperature, top_k,
                                         max_new_tokens, batch_size)
        outcomes = [bool(task.evaluate(conversation, c)) for c in completions]
        passed_samples += sum(outcomes)
        correct += any(outcomes)
        done += 1
        if progress:
            progress(done, correct)
    return {"num_problems": done, "num_correct": correct, "num_samples": num_samples,
            "samples_passed": passed_samples, "cropped_prompts": cropped}

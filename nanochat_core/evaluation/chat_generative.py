"""Generative chat scoring (GSM8K, HumanEval): sample answers, grade each, pass@n per problem.

nanochat's way: per problem, the prompt (rendered up to <|assistant_start|>) is prefilled once and
`num_samples` completions are drawn from it at the given temperature/top-k, with the calculator
tool on (chat.tools: a GSM8K answer may compute through <|python_start|>...); each completion is
graded by task.evaluate and the problem counts as solved when any sample passes. Samples are drawn
in batches of at most `batch_size` rows, batch k of every problem seeded 42 + k (nanochat seeds
each problem's generation with 42): a problem's samples depend on that problem alone, not on the
problems scored before it, so runs are reproducible and a torchrun split draws the same samples.
A prompt longer than the model's context is cropped from the left and counted.

With one sample per problem (greedy pass@1, the usual case) the problems are decoded many at once
(chat.lockstep.complete_many: rows in lockstep by position, batches of at most `batch_tokens`
positions), each row seeded 42 as it would be alone; on the demo's d3 model the 200 Arithmetic
answers are identical to one-at-a-time decoding (tests/test_lockstep.py, bench_generation.py).
Several samples per problem keep the per-problem batches above.
"""
from __future__ import annotations

from nanochat_core.tokenizer.chat_render import render_for_completion
from nanochat_core.chat.lockstep import DEFAULT_BATCH_TOKENS, complete_many
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
                   max_new_tokens: int, batch_size: int, context: int, progress=None,
                   batch_tokens: int = DEFAULT_BATCH_TOKENS) -> dict:
    """Score task[i] for i in indices; {num_problems, num_correct, num_samples, samples_passed,
    cropped_prompts}. `progress(done, correct)` is called after each problem (after each batch of
    problems when they are decoded together)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    conversations, prompts = [], []
    cropped = 0
    for i in indices:
        conversations.append(task[i])
        prompt, was_cropped = crop_left(render_for_completion(tokenizer, conversations[-1]), context)
        prompts.append(prompt)
        cropped += was_cropped
    correct = passed_samples = done = 0

    def grade(conversation, completions: list[str]) -> None:
        nonlocal correct, passed_samples, done
        outcomes = [bool(task.evaluate(conversation, c)) for c in completions]
        passed_samples += sum(outcomes)
        correct += any(outcomes)
        done += 1

    if num_samples == 1:
        # problems in chunks, so progress lines keep coming on a long task; each chunk is batched by length
        chunk = max(1, batch_tokens // (max(map(len, prompts), default=1) + max_new_tokens))
        for start in range(0, len(prompts), chunk):
            rows = complete_many(model, tokenizer, prompts[start:start + chunk], max_new_tokens, temperature, top_k,
                                 seeds=SEED, batch_tokens=batch_tokens)
            for conversation, row in zip(conversations[start:start + chunk], rows):
                grade(conversation, [tokenizer.decode(row.tokens)])
                if progress:
                    progress(done, correct)
    else:
        for conversation, prompt in zip(conversations, prompts):
            grade(conversation, sample_completions(model, tokenizer, prompt, num_samples, temperature, top_k,
                                                   max_new_tokens, batch_size))
            if progress:
                progress(done, correct)
    return {"num_problems": done, "num_correct": correct, "num_samples": num_samples,
            "samples_passed": passed_samples, "cropped_prompts": cropped}

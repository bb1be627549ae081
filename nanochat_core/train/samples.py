"""Greedy completions of a few fixed prompts: a quick look at what the base model has learned."""
from __future__ import annotations

# nanochat's base_train / base_eval prompts.
SAMPLE_PROMPTS = [
    "The capital of France is",
    "The chemical symbol of gold is",
    "If yesterday was Friday, then tomorrow will be",
    "The opposite of hot is",
    "The planets of the solar system are:",
    "My favorite color is",
    "If 5*x + 3 = 13, then x is",
]


def greedy_samples(model, tokenizer, prompts=SAMPLE_PROMPTS, max_tokens: int = 16) -> list[str]:
    """prompt + greedy continuation (temperature 0), one string per prompt."""
    from nanochat_core.chat.engine import generate_tokens

    bos = tokenizer.get_bos_token_id()
    rows = [tokenizer.encode(p, prepend=bos) for p in prompts]
    outs = generate_tokens(model, rows, max_tokens, temperature=0.0, stop_tokens=(bos,))
    return [tokenizer.decode(row[1:] + out) for row, out in zip(rows, outs)]


def print_samples(model, tokenizer, prompts=SAMPLE_PROMPTS, max_tokens: int = 16) -> list[str]:
    texts = greedy_samples(model, tokenizer, prompts, max_tokens)
    for text in texts:
        print(text, flush=True)
    return texts

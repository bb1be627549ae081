"""Generation speed with and without the KV cache: a depth-4 model of nanochat's shape on this CPU.

With the cache the prompt is prefilled once and each new token costs one position's forward; without
it every step re-runs the whole sequence so far (a plain forward, logits at every position included,
as a cache-less generate does). Both decode greedily from the same prompt for the
same number of tokens (and must produce the same tokens); each timing is the best of --repeats runs.
Random weights: speed does not depend on what the model has learned.

    python benchmarks/bench_generation.py [--depth 4] [--vocab-size 32768] [--prompt-len 64] [--max-tokens 256]
"""
from __future__ import annotations

import argparse
import time

import torch

from nanochat_core.chat.engine import generate_tokens
from nanochat_core.model.gpt import GPT
from nanochat_core.model.sizing import build_model_config


def build_model(depth: int, vocab_size: int, max_seq_len: int) -> GPT:
    torch.manual_seed(0)
    model = GPT(build_model_config(depth, vocab_size, max_seq_len=max_seq_len))
    model.init_weights()
    with torch.no_grad():  # init zeroes the output projections; give attention and MLP something to do
        for block in model.transformer.h:
            block.attn.c_proj.weight.normal_(0, 0.02)
            block.mlp.c_proj.weight.normal_(0, 0.02)
    return model.eval()


@torch.inference_mode()
def generate_without_cache(model: GPT, prompt: list[int], max_tokens: int) -> list[int]:
    seq = torch.tensor([prompt], dtype=torch.long)
    out = []
    for _ in range(max_tokens):
        nxt = model(seq)[:, -1, :].argmax(dim=-1)
        out.append(int(nxt))
        seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
    return out


def best_time(fn, repeats: int) -> tuple[float, list[int]]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--vocab-size", type=int, default=32768)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    model = build_model(args.depth, args.vocab_size, args.max_seq_len)
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    print(f"d{c.n_layer}: n_embd {c.n_embd}, n_head {c.n_head}, head_dim {c.head_dim}, vocab {c.vocab_size}, "
          f"{n_params / 1e6:.1f}M params; torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 CPU")
    prompt = torch.randint(0, args.vocab_size, (args.prompt_len,), generator=torch.Generator().manual_seed(1)).tolist()
    print(f"prompt {args.prompt_len} tokens, {args.max_tokens} new tokens (greedy), best of {args.repeats}")

    generate_tokens(model, prompt, 8, temperature=0.0)  # warm-up: first-call allocations, kernel selection
    generate_without_cache(model, prompt, 8)
    t_cache, with_cache = best_time(lambda: generate_tokens(model, prompt, args.max_tokens, temperature=0.0)[0],
                                    args.repeats)
    t_plain, without_cache = best_time(lambda: generate_without_cache(model, prompt, args.max_tokens), args.repeats)
    if with_cache != without_cache:
        raise SystemExit("the KV-cache decode and the full recompute produced different tokens")
    cached, plain = args.max_tokens / t_cache, args.max_tokens / t_plain
    print(f"with KV cache:    {cached:8.1f} tokens/s  ({t_cache:.2f} s)")
    print(f"without KV cache: {plain:8.1f} tokens/s  ({t_plain:.2f} s)")
    print(f"speed-up: {cached / plain:.2f}x (same {args.max_tokens} tokens)")


if __name__ == "__main__":
    main()

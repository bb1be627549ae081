"""Generation speed with and without the KV cache: a depth-4 model of nanochat's shape on this CPU.

With the cache the prompt is prefilled once and each new token costs one position's forward; without
it every step re-runs the whole sequence so far (a plain forward, logits at every position included,
as a cache-less generate does). Both decode greedily from the same prompt for the
same number of tokens (and must produce the same tokens); each timing is the best of --repeats runs.
Random weights: speed does not depend on what the model has learned.

Then many prompts of different lengths, greedy with the calculator tool: one at a time
(chat.tools.complete_rows, as chat_eval decoded before) against all together (chat.lockstep.complete_many,
as chat_eval decodes one-sample problems now), in the same run, with the ratio and how many rows came out
token-for-token identical. With --source/--model-tag the prompts are a chat model's Arithmetic test
problems (chat_eval's order), e.g. the demo's d3 cell:

    python benchmarks/bench_generation.py [--depth 4] [--vocab-size 32768] [--prompt-len 64] [--max-tokens 256]
    NANOCHAT_BASE_DIR=<demo dir> python benchmarks/bench_generation.py --source sft --model-tag d3_2.5e11 \
        --many 200 --many-max-tokens 64 --skip-cache
"""
from __future__ import annotations

import argparse
import time

import torch

from nanochat_core.chat.engine import generate_tokens
from nanochat_core.chat.lockstep import DEFAULT_BATCH_TOKENS, complete_many
from nanochat_core.chat.tools import complete_rows
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


def many_prompts(args, model: GPT):
    """(model, tokenizer, prompts, grade or None) for the many-prompts comparison."""
    if args.source:
        from nanochat_core.chat.loaded_model import load_chat_model
        from nanochat_core.evaluation.chat_eval import problem_indices
        from nanochat_core.tasks.registry import load_eval_task
        from nanochat_core.tokenizer.chat_render import render_for_completion
        chat = load_chat_model(args.source, args.model_tag, None, device=torch.device("cpu"))
        task = load_eval_task("Arithmetic", args.task_data)
        idx = problem_indices(len(task), args.many)
        prompts = [render_for_completion(chat.tokenizer, task[i]) for i in idx]
        print(f"{args.source} {chat.tag} step {chat.step}: {len(prompts)} Arithmetic problems")

        def grade(rows) -> int:
            return sum(bool(task.evaluate(task[i], chat.tokenizer.decode(r.tokens))) for i, r in zip(idx, rows))
        return chat.model.eval(), chat.tokenizer, prompts, grade
    from nanochat_core.tokenizer.bpe import Tokenizer
    tokenizer = Tokenizer.from_mergeable_ranks({bytes([i]): i for i in range(256)})  # its specials: the tool ids
    g = torch.Generator().manual_seed(2)
    lengths = torch.randint(args.prompt_len // 2, args.prompt_len + 1, (args.many,), generator=g).tolist()
    prompts = [torch.randint(0, 256, (n,), generator=g).tolist() for n in lengths]
    print(f"random d{model.config.n_layer}: {args.many} random prompts of {min(lengths)}-{max(lengths)} tokens")
    return model, tokenizer, prompts, None


def compare_many(args, model: GPT) -> None:
    model, tokenizer, prompts, grade = many_prompts(args, model)
    n = args.many_max_tokens
    one = lambda: [complete_rows(model, tokenizer, p, n, temperature=0.0)[0] for p in prompts]  # noqa: E731
    many = lambda: complete_many(model, tokenizer, prompts, n, batch_tokens=args.batch_tokens)  # noqa: E731
    complete_many(model, tokenizer, prompts[:4], 4)  # warm-up
    times = {"one at a time": [], "together": []}
    results = {}
    for _ in range(args.repeats):  # alternating, so a load change on a shared machine hits both
        for name, fn in (("one at a time", one), ("together", many)):
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    a, b = results["one at a time"], results["together"]
    same = sum((x.tokens, x.forced, x.finish_reason) == (y.tokens, y.forced, y.finish_reason) for x, y in zip(a, b))
    emitted = sum(len(r.tokens) for r in a)
    print(f"{len(prompts)} prompts, greedy, at most {n} new tokens each ({emitted} emitted, "
          f"{sum(any(r.forced) for r in a)} rows used the calculator), best of {args.repeats}, alternating")
    for name, ts in times.items():
        print(f"{name:>14}: {min(ts):7.2f} s  ({emitted / min(ts):8.1f} tokens/s)  runs {', '.join(f'{t:.2f}' for t in ts)}")
    print(f"speed-up: {min(times['one at a time']) / min(times['together']):.1f}x; identical rows: {same}/{len(a)}"
          + (f"; graded correct: {grade(a)} one at a time, {grade(b)} together" if grade else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--vocab-size", type=int, default=32768)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--many", type=int, default=64, help="prompts for the one-at-a-time vs together comparison")
    p.add_argument("--many-max-tokens", type=int, default=64)
    p.add_argument("--batch-tokens", type=int, default=DEFAULT_BATCH_TOKENS)
    p.add_argument("--source", default=None, help="a chat model (sft|rl) instead of random weights")
    p.add_argument("--model-tag", default=None)
    p.add_argument("--task-data", default=None)
    p.add_argument("--skip-cache", action="store_true", help="only the many-prompts comparison")
    args = p.parse_args()

    model = build_model(args.depth, args.vocab_size, args.max_seq_len)
    if args.skip_cache:
        compare_many(args, model)
        return
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
    print()
    compare_many(args, model)


if __name__ == "__main__":
    main()

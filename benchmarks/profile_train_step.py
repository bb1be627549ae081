"""Where a CPU training step spends its time: torch.profiler over a few real steps (forward, backward,
optimizer) of the base_train recipe model or of the demo's tiny cell, on random tokens.

    python benchmarks/profile_train_step.py [--model recipe|tiny] [--steps 3] [--rows 25]

recipe: depth 4, head dim 64, seq 512, vocab 4096, window L, device batch 16 (as bench_base_train.py);
tiny: the demo preset's d2 cell (aspect 12, head dim 12, seq 64, vocab 512, batch 32 x 64 = 2048 tokens).
Prints the step's wall time split into forward / backward / optimizer, then the profiler's table of the
ops with the most self CPU time, and the number of ops dispatched per step.
"""
from __future__ import annotations

import argparse
import time

import torch

SHAPES = {
    # name: (depth, aspect_ratio, head_dim, seq_len, device_batch, vocab, window_pattern)
    "recipe": (4, 64, 64, 512, 16, 4096, "L"),
    "tiny": (2, 12, 12, 64, 32, 512, "L"),
}


def build(shape: str):
    from nanochat_core.model.sizing import build_model_config, meta_model

    depth, aspect, head_dim, seq, batch, vocab, pattern = SHAPES[shape]
    config = build_model_config(depth, vocab, seq, aspect, head_dim, pattern)
    torch.manual_seed(0)
    model = meta_model(config)
    model.to_empty(device="cpu")
    model.init_weights()
    opt = model.setup_optimizer(weight_decay=0.1)
    x = torch.randint(0, vocab, (batch, seq))
    y = torch.randint(0, vocab, (batch, seq))
    return model, opt, x, y


def timed_step(model, opt, x, y) -> tuple[float, float, float, float]:
    t0 = time.perf_counter()
    loss = model(x, y)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    model.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    return loss.item(), t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(SHAPES), default="recipe")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from nanochat_core.train.cpu_allocator import keep_freed_memory

    keep_freed_memory()  # as the trainer does on CPU
    model, opt, x, y = build(args.model)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {args.model}: "
          f"{sum(p.numel() for p in model.parameters()):,} params, {x.numel():,} tokens/step")
    for _ in range(3):  # warm-up: allocations, optimizer state
        timed_step(model, opt, x, y)
    parts = [timed_step(model, opt, x, y) for _ in range(max(3, args.steps))]
    for name, i in (("forward", 1), ("backward", 2), ("optimizer", 3)):
        vals = sorted(p[i] for p in parts)
        print(f"{name:9s} median {vals[len(vals) // 2] * 1000:8.1f} ms")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            timed_step(model, opt, x, y)
    events = prof.key_averages()
    n_ops = sum(e.count for e in events if e.key.startswith("aten::")) / args.steps
    print(f"aten ops dispatched per step (nested included): {n_ops:,.0f}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()

"""Record the raw losses of N real training steps (forward, backward, MuonAdamW step with base_train's
schedules) of the base_train recipe model or the demo's tiny cell on fixed random tokens, as JSON.

    python benchmarks/record_step_losses.py --model recipe --steps 20 --out losses.json
    python benchmarks/record_step_losses.py --compare before.json after.json [--tol 1e-4]

Run it from two checkouts (PYTHONPATH=<checkout>) to show a speed change leaves training unchanged:
--compare prints the largest difference per step and exits 1 when one exceeds --tol.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

# (depth, aspect_ratio, head_dim, seq_len, device_batch, vocab, window_pattern, warmup_steps, LR multiplier)
SHAPES = {
    "recipe": (4, 64, 64, 512, 16, 4096, "L", 40, 1.0),  # bench_base_train.py's command, base_train's defaults
    "tiny": (2, 12, 12, 64, 32, 512, "L", 2, 32.0),  # the demo preset's d2 cell (its LRs are nanochat's x 32)
}


def record(shape: str, steps: int) -> list[float]:
    """Raw losses of `steps` steps at the LRs, momentum and decay base_train would use (plan_training)."""
    from nanochat_core.model.sizing import meta_model, plan_training
    from nanochat_core.train.schedules import base_lr_multiplier, muon_momentum, muon_weight_decay

    depth, aspect, head_dim, seq, batch, vocab, pattern, warmup, lr_x = SHAPES[shape]
    plan = plan_training(depth, vocab, max_seq_len=seq, aspect_ratio=aspect, head_dim=head_dim,
                         window_pattern=pattern, num_iterations=steps, total_batch_size=batch * seq,
                         embedding_lr=0.3 * lr_x, unembedding_lr=0.008 * lr_x, matrix_lr=0.02 * lr_x,
                         scalar_lr=0.5 * lr_x)
    torch.manual_seed(42)
    model = meta_model(plan.model_config)
    model.to_empty(device="cpu")
    model.init_weights()
    opt = model.setup_optimizer(unembedding_lr=plan.unembedding_lr, embedding_lr=plan.embedding_lr,
                                matrix_lr=plan.matrix_lr, weight_decay=plan.weight_decay, scalar_lr=plan.scalar_lr)
    gen = torch.Generator().manual_seed(1234)
    # Token streams with structure (a repeating pattern plus noise), so the loss actually moves.
    base = torch.randint(0, vocab, (64,), generator=gen)
    losses = []
    for step in range(steps):
        lrm = base_lr_multiplier(step, steps, warmup_steps=warmup)
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * lrm
            if g["kind"] == "muon":
                g["momentum"] = muon_momentum(step)
                g["weight_decay"] = muon_weight_decay(step, steps, plan.weight_decay)
        offs = torch.randint(0, 64, (batch, 1), generator=gen)
        seqs = base[(torch.arange(seq + 1) + offs) % 64]
        noise = torch.rand(seqs.shape, generator=gen) < 0.2
        seqs = torch.where(noise, torch.randint(0, vocab, seqs.shape, generator=gen), seqs)
        x, y = seqs[:, :-1].contiguous(), seqs[:, 1:].contiguous()
        loss = model(x, y)
        loss.backward()
        opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(SHAPES), default="recipe")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); rounding "
                        "differs with the thread count, which shows how much of a difference is rounding alone")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.compare:
        a, b = (json.load(open(p)) for p in args.compare)
        diffs = [abs(x - y) for x, y in zip(a["losses"], b["losses"])]
        for i, (x, y) in enumerate(zip(a["losses"], b["losses"])):
            print(f"step {i:2d}: {x:.6f} {y:.6f} diff {abs(x - y):.2e}")
        worst = max(diffs)
        print(f"{len(diffs)} steps, largest difference {worst:.2e} (tolerance {args.tol:g})")
        sys.exit(0 if worst <= args.tol and len(a["losses"]) == len(b["losses"]) else 1)
    t0 = time.perf_counter()
    losses = record(args.model, args.steps)
    out = {"model": args.model, "steps": args.steps, "losses": losses, "seconds": time.perf_counter() - t0,
           "torch": torch.__version__,
           "threads": torch.get_num_threads()}
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()

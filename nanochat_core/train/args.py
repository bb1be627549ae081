"""base_train's command-line flags: nanochat's names and defaults, plus the seed's additions.

The parser is the single source of truth for defaults: the pipeline builds its `args` through
`make_args(**overrides)` so programmatic runs get the same defaults and the same validation. The
flags chat_sft and chat_rl spell the same way, and the checked types, are flags.py's.
"""
from __future__ import annotations

import argparse

from nanochat_core.train.flags import (DEVICE_BATCH_HELP, CommandFlags, add_fraction_flag, add_lr_flag, add_run_flag,
                                       add_runtime_group, add_save_every_flag, batch_size_or_auto, flag_name,
                                       fraction)

FRACTION_FLAGS = ("warmup_ratio", "warmdown_ratio", "init_lr_frac", "final_lr_frac")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nanochat_core.cli.base_train",
        description="Pretrain a base GPT (nanochat's base_train): every hyperparameter follows from --depth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_run_flag(p.add_argument_group("logging"))
    add_runtime_group(p, "torch.compile the model: auto = on CUDA, and on CPU when the run is long enough to repay "
                         "compiling (~30 s of compute at peak)", fp8=True)
    g = p.add_argument_group("model")
    g.add_argument("--depth", type=int, default=20, help="number of transformer layers: the one dial")
    g.add_argument("--aspect-ratio", type=int, default=64, help="model_dim = depth * aspect_ratio (rounded up to head_dim)")
    g.add_argument("--head-dim", type=int, default=128, help="attention head dimension")
    g.add_argument("--max-seq-len", type=int, default=2048, help="context length")
    g.add_argument("--window-pattern", type=str, default="SSSL",
                   help="sliding-window pattern tiled over layers: L = full context, S = short window; last layer always L")
    g = p.add_argument_group("training horizon (first that applies: iterations, target FLOPs, ratio)")
    g.add_argument("--num-iterations", type=int, default=-1, help="explicit number of steps (-1 = derive)")
    g.add_argument("--target-flops", type=float, default=-1.0, help="training FLOP budget (-1 = off)")
    g.add_argument("--target-param-data-ratio", type=float, default=10.5, help="tokens : scaling params")
    g = p.add_argument_group("optimization")
    g.add_argument("--device-batch-size", type=batch_size_or_auto, default=32, help=DEVICE_BATCH_HELP)
    g.add_argument("--total-batch-size", type=int, default=-1, help="tokens per optimizer step (-1 = derive from the horizon)")
    add_lr_flag(g, "embedding_lr", 0.3)
    add_lr_flag(g, "unembedding_lr", 0.008)
    g.add_argument("--weight-decay", type=float, default=0.28, help="Muon weight decay (scaled by batch and horizon)")
    add_lr_flag(g, "matrix_lr", 0.02)
    g.add_argument("--scalar-lr", type=float, default=0.5, help="AdamW LR of the per-layer scalars")
    g.add_argument("--warmup-steps", type=int, default=40, help="linear LR warmup steps")
    add_fraction_flag(g, "warmup_ratio", None,
                      "fraction of steps for LR warmup, in [0.0, 1.0]; when given it overrides --warmup-steps")
    add_fraction_flag(g, "warmdown_ratio", 0.65, "fraction of steps for the linear LR warmdown, in [0.0, 1.0]")
    add_fraction_flag(g, "init_lr_frac", 1.0, "peak LRs as a fraction of the derived ones, in [0.0, 1.0]")
    add_fraction_flag(g, "final_lr_frac", 0.05, "final LR as a fraction of the peak, in [0.0, 1.0]")
    g.add_argument("--resume-from-step", type=int, default=-1, help="resume from this checkpoint step (-1 = fresh run)")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--eval-every", type=int, default=250, help="validation bpb every N steps and at the end (<= 0 = never)")
    g.add_argument("--eval-tokens", type=int, default=80 * 524288, help="tokens per validation bpb")
    g.add_argument("--core-metric-every", type=int, default=2000, help="CORE every N steps (-1 = off)")
    g.add_argument("--core-metric-max-per-task", type=int, default=500, help="examples per CORE task")
    g.add_argument("--sample-every", type=int, default=2000, help="print samples every N steps (-1 = off)")
    add_save_every_flag(g)
    g.add_argument("--model-tag", type=str, default=None, help="checkpoint folder name; when not given, d{depth}")
    return p


def validate_args(args: argparse.Namespace) -> argparse.Namespace:
    """Checks the parser cannot express (and re-checks fractions for programmatic Namespaces)."""
    for name in FRACTION_FLAGS:
        value = getattr(args, name)
        if value is not None:
            fraction(flag_name(name))(str(value))
    if args.device_batch_size != "auto":
        batch_size_or_auto(str(args.device_batch_size))
    if args.model_tag is None:
        args.model_tag = f"d{args.depth}"
    return args


BASE_TRAIN_FLAGS = CommandFlags("base_train", build_parser, validate_args)
parse_args, make_args = BASE_TRAIN_FLAGS.parse, BASE_TRAIN_FLAGS.make

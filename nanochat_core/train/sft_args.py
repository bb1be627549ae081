"""chat_sft's command-line flags: nanochat's names and defaults (scripts/chat_sft.py), plus ours for data and runtime.

Batch and LR flags left at None inherit from the base checkpoint's meta (resolved by the trainer,
which records the values it used in the SFT checkpoint's user_config). As in args.py, the parser
is the single source of truth for defaults: programmatic runs use `make_sft_args(**overrides)`. The
flags spelled as in base_train or chat_rl, and the checked types, are flags.py's.
"""
from __future__ import annotations

import argparse
import os

from nanochat_core.train.args import FRACTION_FLAGS
from nanochat_core.train.flags import (DEVICE_BATCH_HELP, CommandFlags, add_fraction_flag, add_lr_flag,
                                       add_parent_flags, add_resume_flag, add_run_flag, add_runtime_group,
                                       add_save_every_flag, add_task_data_flag, batch_size_or_auto, flag_name,
                                       fraction, non_negative)

INHERITED_FLAGS = ("max_seq_len", "device_batch_size", "total_batch_size", "embedding_lr", "unembedding_lr",
                   "matrix_lr")
IDENTITY_FILE = "identity_conversations.jsonl"  # under $NANOCHAT_BASE_DIR, where gen_synthetic_data writes


def zero_or_one(text: str) -> int:
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"--load-optimizer must be 0 or 1, got {text!r}")
    return int(text)


def build_sft_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nanochat_core.cli.chat_sft",
        description="Supervised fine-tuning of a base checkpoint into a chat model (nanochat's chat_sft).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("jsonl", nargs="*", default=[], metavar="JSONL",
                   help="extra conversation files (one {\"messages\": [...]} or bare message array per line), "
                        "each added once to the mixture; a malformed line stops the run before training")
    add_run_flag(p.add_argument_group("logging"))
    add_runtime_group(p, "torch.compile the model: auto = on CUDA; on CPU only for a fixed --num-iterations "
                         "long enough to repay compiling")
    g = p.add_argument_group("input model and output")
    add_parent_flags(g, "base checkpoint folder under base_checkpoints; when not given, the largest depth's tag", "base")
    g.add_argument("--output-tag", type=str, default=None,
                   help="folder under chatsft_checkpoints; when not given, the base model's tag")
    g.add_argument("--load-optimizer", type=zero_or_one, default=1,
                   help="1 = warm-start the optimizer's momentum buffers from the base checkpoint (LRs reset to this run's)")
    add_resume_flag(g, "SFT")
    add_save_every_flag(g)
    g = p.add_argument_group("data")
    add_task_data_flag(g, "chat_eval")
    g.add_argument("--identity", type=str, default=None,
                   help=f"identity conversations JSONL, trained on twice; default $NANOCHAT_BASE_DIR/{IDENTITY_FILE} "
                        "(missing = reported and left out)")
    g.add_argument("--mmlu-epochs", type=non_negative("--mmlu-epochs"), default=3,
                   help="epochs over MMLU auxiliary_train (0 = leave it out)")
    g.add_argument("--gsm8k-epochs", type=non_negative("--gsm8k-epochs"), default=4,
                   help="epochs over GSM8K train (0 = leave it out)")
    g.add_argument("--arithmetic-epochs", type=non_negative("--arithmetic-epochs"), default=0,
                   help="ours: epochs over the generated arithmetic task's train split (tool calls included), "
                        "the offline stand-in for GSM8K before chat_rl --task arithmetic (0 = leave it out)")
    g.add_argument("--seed", type=int, default=42, help="shuffle seed of the mixture")
    g = p.add_argument_group("optimization (None = inherit from the base checkpoint)")
    g.add_argument("--num-iterations", type=int, default=-1, help="number of steps (-1 = one epoch of the mixture)")
    g.add_argument("--max-seq-len", type=int, default=None, help="row length in tokens")
    g.add_argument("--device-batch-size", type=batch_size_or_auto, default=None, help=DEVICE_BATCH_HELP)
    g.add_argument("--total-batch-size", type=int, default=None, help="tokens per optimizer step")
    add_lr_flag(g, "embedding_lr", None, ", as base_train's flag (scaled by sqrt(batch / 2^19))")
    add_lr_flag(g, "unembedding_lr", None, ", as base_train's flag")
    add_lr_flag(g, "matrix_lr", None, ", as base_train's flag")
    add_fraction_flag(g, "init_lr_frac", 0.8, "peak LRs as a fraction of the base run's, in [0.0, 1.0]")
    add_fraction_flag(g, "warmup_ratio", 0.0,
                      "fraction of training for the linear LR warmup, in [0.0, 1.0] (0 = none)")
    add_fraction_flag(g, "warmdown_ratio", 0.5, "fraction of training for the linear LR warmdown, in [0.0, 1.0]")
    add_fraction_flag(g, "final_lr_frac", 0.0, "final LR as a fraction of the peak, in [0.0, 1.0]")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-every", type=int, default=200, help="validation bpb every N steps and at the end (<= 0 = never)")
    g.add_argument("--eval-tokens", type=int, default=40 * 524288, help="tokens per validation bpb")
    g.add_argument("--chatcore-every", type=int, default=200, help="ChatCORE every N steps and at the end (-1 = off)")
    g.add_argument("--chatcore-max-cat", type=int, default=-1, help="ChatCORE problems per categorical task (-1 = all)")
    g.add_argument("--chatcore-max-sample", type=int, default=24, help="ChatCORE problems per generative task")
    return p


def validate_sft_args(args: argparse.Namespace) -> argparse.Namespace:
    """Checks the parser cannot express (and re-checks types for programmatic Namespaces)."""
    for name in FRACTION_FLAGS:
        fraction(flag_name(name))(str(getattr(args, name)))
    for name in ("mmlu_epochs", "gsm8k_epochs", "arithmetic_epochs"):
        non_negative(flag_name(name))(str(getattr(args, name)))
    zero_or_one(str(args.load_optimizer))
    if args.device_batch_size not in (None, "auto"):
        batch_size_or_auto(str(args.device_batch_size))
    for name in ("max_seq_len", "total_batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise argparse.ArgumentTypeError(f"{flag_name(name)} must be a positive integer, got {value}")
    if isinstance(args.jsonl, (str, os.PathLike)):  # one file given programmatically
        args.jsonl = [args.jsonl]
    args.jsonl = [str(p) for p in args.jsonl]
    return args


CHAT_SFT_FLAGS = CommandFlags("chat_sft", build_sft_parser, validate_sft_args, intermixed=True)  # JSONL files anywhere
parse_sft_args, make_sft_args = CHAT_SFT_FLAGS.parse, CHAT_SFT_FLAGS.make

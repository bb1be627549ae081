"""chat_sft's command-line flags: nanochat's names and defaults (scripts/chat_sft.py), plus ours for data and runtime.

Batch and LR flags left at None inherit from the base checkpoint's meta (resolved by the trainer,
which records the values it used in the SFT checkpoint's user_config). As in args.py, the parser
is the single source of truth for defaults: programmatic runs use `make_sft_args(**overrides)`.
"""
from __future__ import annotations

import argparse
import os

from nanochat_core.train.args import (FRACTION_FLAGS, batch_size_or_auto, flag_name, fraction, make_namespace,
                                      validate_or_exit)

INHERITED_FLAGS = ("max_seq_len", "device_batch_size", "total_batch_size", "embedding_lr", "unembedding_lr",
                   "matrix_lr")
IDENTITY_FILE = "identity_conversations.jsonl"  # under $NANOCHAT_BASE_DIR, where gen_synthetic_data writes


def non_negative(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a non-negative integer, got {text!r}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"{flag} must be a non-negative integer, got {value}")
        return value
    parse.__name__ = "non-negative int"
    return parse


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
    g = p.add_argument_group("logging")
    g.add_argument("--run", type=str, default="dummy", help="wandb run name; 'dummy' disables wandb")
    g = p.add_argument_group("runtime")
    g.add_argument("--device-type", type=str, default="auto", help="cuda | cpu | mps | auto (detect)")
    g.add_argument("--compile", type=str, default="auto", choices=("auto", "0", "1"),
                   help="torch.compile the model: auto = on CUDA; on CPU only for a fixed --num-iterations "
                        "long enough to repay compiling")
    g.add_argument("--peak-flops", type=float, default=-1.0,
                   help="peak FLOP/s of one device for MFU; -1 = known GPU figure, or on CPU a one-second fp32 matmul probe")
    g.add_argument("--attention", type=str, default="auto", choices=("auto", "flex", "fa3", "sdpa"),
                   help="attention kernels: auto = FA3 (CUDA bf16, `kernels` installed and its build on disk or "
                        "reachable), else FlexAttention for sliding windows on CUDA, else SDPA; see model/attention.py")
    g = p.add_argument_group("input model and output")
    g.add_argument("--model-tag", type=str, default=None,
                   help="base checkpoint folder under base_checkpoints; when not given, the largest depth's tag")
    g.add_argument("--model-step", type=int, default=None, help="base checkpoint step; when not given, the last")
    g.add_argument("--output-tag", type=str, default=None,
                   help="folder under chatsft_checkpoints; when not given, the base model's tag")
    g.add_argument("--load-optimizer", type=zero_or_one, default=1,
                   help="1 = warm-start the optimizer's momentum buffers from the base checkpoint (LRs reset to this run's)")
    g.add_argument("--resume-from-step", type=int, default=-1, help="resume this SFT run from its checkpoint at this step (-1 = fresh run)")
    g.add_argument("--save-every", type=int, default=-1, help="checkpoint every N steps (-1 = only at the end)")
    g = p.add_argument_group("data")
    g.add_argument("--task-data", type=str, default=None,
                   help="task data root (release files or Hub cache), shared with chat_eval; "
                        "default $NANOCHAT_TASK_DATA or $NANOCHAT_BASE_DIR/task_data")
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
    g.add_argument("--device-batch-size", type=batch_size_or_auto, default=None,
                   help="rows per device per micro-step, or 'auto' (largest power of two <= 32 that fits memory and divides the total batch)")
    g.add_argument("--total-batch-size", type=int, default=None, help="tokens per optimizer step")
    g.add_argument("--embedding-lr", type=float, default=None,
                   help="AdamW LR of wte and value embeddings, as base_train's flag (scaled by sqrt(batch / 2^19))")
    g.add_argument("--unembedding-lr", type=float, default=None, help="AdamW LR of lm_head, as base_train's flag")
    g.add_argument("--matrix-lr", type=float, default=None, help="Muon LR of the block matrices, as base_train's flag")
    g.add_argument("--init-lr-frac", type=fraction("--init-lr-frac"), default=0.8,
                   help="peak LRs as a fraction of the base run's, in [0.0, 1.0]")
    g.add_argument("--warmup-ratio", type=fraction("--warmup-ratio"), default=0.0,
                   help="fraction of training for the linear LR warmup, in [0.0, 1.0] (0 = none)")
    g.add_argument("--warmdown-ratio", type=fraction("--warmdown-ratio"), default=0.5,
                   help="fraction of training for the linear LR warmdown, in [0.0, 1.0]")
    g.add_argument("--final-lr-frac", type=fraction("--final-lr-frac"), default=0.0,
                   help="final LR as a fraction of the peak, in [0.0, 1.0]")
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


def parse_sft_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_sft_parser()
    # JSONL files may come before, between or after the flags
    return validate_or_exit(parser, validate_sft_args, parser.parse_intermixed_args(argv))


def make_sft_args(**overrides) -> argparse.Namespace:
    """A Namespace with the CLI's defaults and `overrides` (python names), validated like the CLI."""
    return make_namespace("chat_sft", build_sft_parser(), validate_sft_args, overrides)

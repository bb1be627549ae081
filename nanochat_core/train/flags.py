"""What the three trainers' command lines (base_train, chat_sft, chat_rl) share: checked flag types,
the flags spelled the same in two or three of them, and one way to turn a parser into the CLI's
`parse` and the pipeline's `make` (the parser is the single source of truth for defaults).

A flag that differs between commands in its default or help keeps its own line in args.py,
sft_args.py or rl_args.py; a flag defined here reads the same in every command that has it.
"""
from __future__ import annotations

import argparse
from typing import Callable

# the help every LR flag of nanochat's optimizer groups shares (chat_sft adds how its values are inherited)
LR_HELP = {"embedding_lr": "AdamW LR of wte and value embeddings", "unembedding_lr": "AdamW LR of lm_head",
           "matrix_lr": "Muon LR of the block matrices"}
DEVICE_BATCH_HELP = ("rows per device per micro-step, or 'auto' (largest power of two <= 32 that fits memory "
                     "and divides the total batch)")


def flag_name(name: str) -> str:
    """The command-line flag of a Namespace attribute: max_seq_len -> --max-seq-len."""
    return "--" + name.replace("_", "-")


def checked(flag: str, convert: Callable, accept: Callable, expected: str, type_name: str,
            accepted: str | None = None):
    """An argparse type: convert(text), then accept(value); each error names the flag and says what
    it must be (`expected`, or `accepted` for a well-formed value out of range)."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {expected}, got {text!r}")
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{flag} must be {accepted or expected}, got {value}")
        return value
    parse.__name__ = type_name
    return parse


def fraction(flag: str):
    """Floats in [0.0, 1.0]."""
    return checked(flag, float, lambda v: 0.0 <= v <= 1.0, "a number in [0.0, 1.0]", "fraction", "in [0.0, 1.0]")


def non_negative(flag: str):
    return checked(flag, int, lambda v: v >= 0, "a non-negative integer", "non-negative int")


def batch_size_or_auto(text: str) -> int | str:
    """`--device-batch-size`: a positive integer, or `auto` (largest power of two <= 32 that fits)."""
    if text == "auto":
        return "auto"
    return checked("--device-batch-size", int, lambda v: v > 0, "a positive integer or 'auto'", "int")(text)


# ---- flags spelled the same in several commands -------------------------------------------
def add_run_flag(g) -> None:
    g.add_argument("--run", type=str, default="dummy", help="wandb run name; 'dummy' disables wandb")


def add_runtime_group(p: argparse.ArgumentParser, compile_help: str, fp8: bool = False) -> None:
    """base_train's and chat_sft's runtime flags (`fp8`: base_train's --fp8 after --device-type)."""
    g = p.add_argument_group("runtime")
    g.add_argument("--device-type", type=str, default="auto", help="cuda | cpu | mps | auto (detect)")
    if fp8:
        g.add_argument("--fp8", action="store_true", help="fp8 matmuls (CUDA SM90+ with torchao only)")
    g.add_argument("--compile", type=str, default="auto", choices=("auto", "0", "1"), help=compile_help)
    g.add_argument("--peak-flops", type=float, default=-1.0,
                   help="peak FLOP/s of one device for MFU; -1 = known GPU figure, or on CPU a one-second fp32 matmul probe")
    g.add_argument("--attention", type=str, default="auto", choices=("auto", "flex", "fa3", "sdpa"),
                   help="attention kernels: auto = FA3 (CUDA bf16, `kernels` installed and its build on disk or "
                        "reachable), else FlexAttention for sliding windows on CUDA, else SDPA; see model/attention.py")


def add_parent_flags(g, tag_help: str, parent: str) -> None:
    """--model-tag and --model-step of the checkpoint a fine-tuning run starts from (`parent`: base, SFT)."""
    g.add_argument("--model-tag", type=str, default=None, help=tag_help)
    g.add_argument("--model-step", type=int, default=None, help=f"{parent} checkpoint step; when not given, the last")


def add_resume_flag(g, run: str) -> None:
    """A fine-tuning run's --resume-from-step (`run`: SFT, RL)."""
    g.add_argument("--resume-from-step", type=int, default=-1,
                   help=f"resume this {run} run from its checkpoint at this step (-1 = fresh run)")


def add_save_every_flag(g) -> None:
    g.add_argument("--save-every", type=int, default=-1, help="checkpoint every N steps (-1 = only at the end)")


def add_task_data_flag(g, shared_with: str) -> None:
    g.add_argument("--task-data", type=str, default=None,
                   help=f"task data root (release files or Hub cache), shared with {shared_with}; "
                        "default $NANOCHAT_TASK_DATA or $NANOCHAT_BASE_DIR/task_data")


def add_fraction_flag(g, name: str, default: float | None, help: str) -> None:
    """A flag taking a number in [0.0, 1.0] (LR schedule shares); `help` ends with where it lies."""
    g.add_argument(flag_name(name), type=fraction(flag_name(name)), default=default, help=help)


def add_lr_flag(g, name: str, default: float, more: str = "") -> None:
    g.add_argument(flag_name(name), type=float, default=default, help=LR_HELP[name] + more)


# ---- parse (the CLI) and make (the pipeline, the tests) ------------------------------------
class CommandFlags:
    """A command's flags: `parse(argv)` for its CLI, `make(**overrides)` for a programmatic run, both
    validated by `validate(args)` (checks the parser cannot express)."""

    def __init__(self, tool: str, build_parser: Callable[[], argparse.ArgumentParser], validate: Callable,
                 intermixed: bool = False):
        self.tool, self.build_parser, self.validate, self.intermixed = tool, build_parser, validate, intermixed

    def parse(self, argv: list[str] | None = None) -> argparse.Namespace:
        """The CLI's Namespace; a failed check exits with the parser's usage error, like a bad flag value."""
        parser = self.build_parser()
        # intermixed: positional files may come before, between or after the flags
        args = parser.parse_intermixed_args(argv) if self.intermixed else parser.parse_args(argv)
        try:
            return self.validate(args)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))

    def make(self, **overrides) -> argparse.Namespace:
        """A Namespace with the CLI's defaults and `overrides` (python names), validated like the CLI;
        an unknown name is a TypeError, a bad value a ValueError."""
        args = self.build_parser().parse_args([])
        unknown = set(overrides) - set(vars(args))
        if unknown:
            raise TypeError(f"unknown {self.tool} option(s): {', '.join(sorted(unknown))}")
        for key, value in overrides.items():
            setattr(args, key, value)
        try:
            return self.validate(args)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(str(exc)) from None

"""base_train's command-line flags: nanochat's names and defaults, plus the seed's additions.

The parser is the single source of truth for defaults: the pipeline builds its `args` through
`make_args(**overrides)` so programmatic runs get the same defaults and the same validation.
"""
from __future__ import annotations

import argparse

FRACTION_FLAGS = ("warmup_ratio", "warmdown_ratio", "init_lr_frac", "final_lr_frac")


def flag_name(name: str) -> str:
    """The command-line flag of a Namespace attribute: max_seq_len -> --max-seq-len."""
    return "--" + name.replace("_", "-")


def fraction(flag: str):
    """An argparse type accepting floats in [0.0, 1.0]; the error names the flag."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number in [0.0, 1.0], got {text!r}")
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"{flag} must be in [0.0, 1.0], got {value}")
        return value
    parse.__name__ = "fraction"
    return parse


def batch_size_or_auto(text: str) -> int | str:
    """`--device-batch-size`: a positive integer, or `auto` (largest power of two <= 32 that fits)."""
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--device-batch-size must be a positive integer or 'auto', got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--device-batch-size must be a positive integer or 'auto', got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nanochat_core.cli.base_train",
        description="Pretrain a base GPT (nanochat's base_train): every hyperparameter follows from --depth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("logging")
    g.add_argument("--run", type=str, default="dummy", help="wandb run name; 'dummy' disables wandb")
    g = p.add_argument_group("runtime")
    g.add_argument("--device-type", type=str, default="auto", help="cuda | cpu | mps | auto (detect)")
    g.add_argument("--fp8", action="store_true", help="fp8 matmuls (CUDA SM90+ with torchao only)")
    g.add_argument("--compile", type=str, default="auto", choices=("auto", "0", "1"),
                   help="torch.compile the model: auto = on CUDA, and on CPU when the run is long enough to repay compiling (~30 s of compute at peak)")
    g.add_argument("--peak-flops", type=float, default=-1.0,
                   help="peak FLOP/s of one device for MFU; -1 = known GPU figure, or on CPU a one-second fp32 matmul probe")
    g.add_argument("--attention", type=str, default="auto", choices=("auto", "flex", "fa3", "sdpa"),
                   help="attention kernels: auto = FA3 (CUDA bf16, `kernels` installed and its build on disk or "
                        "reachable), else FlexAttention for sliding windows on CUDA, else SDPA; see model/attention.py")
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
    g.add_argument("--device-batch-size", type=batch_size_or_auto, default=32,
                   help="rows per device per micro-step, or 'auto' (largest power of two <= 32 that fits memory and divides the total batch)")
    g.add_argument("--total-batch-size", type=int, default=-1, help="tokens per optimizer step (-1 = derive from the horizon)")
    g.add_argument("--embedding-lr", type=float, default=0.3, help="AdamW LR of wte and value embeddings")
    g.add_argument("--unembedding-lr", type=float, default=0.008, help="AdamW LR of lm_head")
    g.add_argument("--weight-decay", type=float, default=0.28, help="Muon weight decay (scaled by batch and horizon)")
    g.add_argument("--matrix-lr", type=float, default=0.02, help="Muon LR of the block matrices")
    g.add_argument("--scalar-lr", type=float, default=0.5, help="AdamW LR of the per-layer scalars")
    g.add_argument("--warmup-steps", type=int, default=40, help="linear LR warmup steps")
    g.add_argument("--warmup-ratio", type=fraction("--warmup-ratio"), default=None,
                   help="fraction of steps for LR warmup, in [0.0, 1.0]; when given it overrides --warmup-steps")
    g.add_argument("--warmdown-ratio", type=fraction("--warmdown-ratio"), default=0.65,
                   help="fraction of steps for the linear LR warmdown, in [0.0, 1.0]")
    g.add_argument("--init-lr-frac", type=fraction("--init-lr-frac"), default=1.0,
                   help="peak LRs as a fraction of the derived ones, in [0.0, 1.0]")
    g.add_argument("--final-lr-frac", type=fraction("--final-lr-frac"), default=0.05,
                   help="final LR as a fraction of the peak, in [0.0, 1.0]")
    g.add_argument("--resume-from-step", type=int, default=-1, help="resume from this checkpoint step (-1 = fresh run)")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--eval-every", type=int, default=250, help="validation bpb every N steps and at the end (<= 0 = never)")
    g.add_argument("--eval-tokens", type=int, default=80 * 524288, help="tokens per validation bpb")
    g.add_argument("--core-metric-every", type=int, default=2000, help="CORE every N steps (-1 = off)")
    g.add_argument("--core-metric-max-per-task", type=int, default=500, help="examples per CORE task")
    g.add_argument("--sample-every", type=int, default=2000, help="print samples every N steps (-1 = off)")
    g.add_argument("--save-every", type=int, default=-1, help="checkpoint every N steps (-1 = only at the end)")
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


def validate_or_exit(parser: argparse.ArgumentParser, validate, args: argparse.Namespace) -> argparse.Namespace:
    """`validate(args)`; a failed check exits with the parser's usage error, like a bad flag value."""
    try:
        return validate(args)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))


def make_namespace(tool: str, parser: argparse.ArgumentParser, validate, overrides: dict) -> argparse.Namespace:
    """A Namespace with `parser`'s defaults and `overrides` (python names), validated like the CLI;
    an unknown name is a TypeError, a bad value a ValueError."""
    args = parser.parse_args([])
    unknown = set(overrides) - set(vars(args))
    if unknown:
        raise TypeError(f"unknown {tool} option(s): {', '.join(sorted(unknown))}")
    for key, value in overrides.items():
        setattr(args, key, value)
    try:
        return validate(args)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    return validate_or_exit(parser, validate_args, parser.parse_args(argv))


def make_args(**overrides) -> argparse.Namespace:
    """A Namespace with the CLI's defaults and `overrides` (python names), validated like the CLI."""
    return make_namespace("base_train", build_parser(), validate_args, overrides)

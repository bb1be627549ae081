"""`python -m nanochat_core.cli.base_eval`: evaluate a base checkpoint (nanochat's scripts/base_eval.py).

Modes (--eval, comma-separated): `bpb` prints `train bpb: X` and `val bpb: X` over --split-tokens
from fresh loaders; `sample` prints greedy completions of fixed prompts; `core` runs CORE over the eval
bundle in --bundle-dir (downloaded when absent), writes base_eval/<tag>_<step:06d>.csv and .json and adds
core_score to the checkpoint's meta json.
Works under torchrun too: bpb is summed across ranks, CORE's examples are split over them.
"""
from __future__ import annotations

import argparse
import sys

MODES = ("core", "bpb", "sample")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_core.cli.base_eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--eval", type=str, default="core,bpb,sample", help="comma-separated modes: core, bpb, sample")
    p.add_argument("--model-tag", type=str, default=None, help="checkpoint folder; when not given, the largest depth's tag")
    p.add_argument("--step", type=int, default=None, help="checkpoint step; when not given, the last")
    p.add_argument("--device-batch-size", type=int, default=32, help="rows per device per forward")
    p.add_argument("--split-tokens", type=int, default=40 * 524288, help="tokens per split for bpb")
    p.add_argument("--max-per-task", type=int, default=-1, help="CORE examples per task (-1 = all)")
    p.add_argument("--bundle-dir", type=str, default=None,
                   help="folder holding core.yaml (default $NANOCHAT_EVAL_BUNDLE_DIR, else $NANOCHAT_BASE_DIR/eval_bundle, "
                        "downloaded when absent)")
    p.add_argument("--device-type", type=str, default="auto", help="cuda | cpu | mps | auto (detect)")
    return p


def parse_modes(text: str, parser: argparse.ArgumentParser) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        parser.error(f"--eval takes a comma-separated subset of {', '.join(MODES)}, got {text!r}")
    return modes


def eval_bpb(model, meta, tokenizer, args, info) -> dict[str, float]:
    from nanochat_core.data.loader import evaluation_loader
    from nanochat_core.evaluation.bpb import evaluate_bpb
    from nanochat_core.common.device import print0
    from nanochat_core.tokenizer.bpe import get_token_bytes

    seq_len = meta["max_seq_len"]
    tokens_per_step = args.device_batch_size * seq_len * info.world_size
    steps = args.split_tokens // tokens_per_step  # rounded down to whole batches
    if steps < 1:
        raise ValueError(f"--split-tokens {args.split_tokens} is less than one batch of --device-batch-size "
                         f"{args.device_batch_size} x {seq_len} (checkpoint seq len) x {info.world_size} process(es)")
    token_bytes = get_token_bytes(device=info.device)
    results = {}
    for split in ("train", "val"):
        # each rank scores its share of one process's batches: the same bpb for any number of ranks
        loader = evaluation_loader(tokenizer, args.device_batch_size, seq_len, split, device=info.device,
                                   rank=info.rank, world_size=info.world_size)
        results[split] = evaluate_bpb(model, loader, steps, token_bytes)
        print0(f"{split} bpb: {results[split]:.6f}")
    return results


def eval_core(evaluator, model, meta, tokenizer, args, info, tag: str) -> None:
    from nanochat_core.common import settings
    from nanochat_core.common.device import print0
    from nanochat_core.evaluation.core import record_core_score, write_results
    from nanochat_core.evaluation.core_bundle import ensure_bundle_distributed
    from nanochat_core.model.checkpoint import checkpoint_dir, meta_path

    bundle = ensure_bundle_distributed(args.bundle_dir, info.is_master)
    # each rank scores its share of every task and the counts are summed; rank 0 alone logs (print0) and writes
    result = evaluator(model, tokenizer, info.device, max_per_task=args.max_per_task, bundle_dir=bundle,
                       batch_size=args.device_batch_size, context=meta["max_seq_len"], log=print0)
    if info.is_master:
        csv_path, json_path = write_results(result, settings.base_eval_dir(), tag, meta["step"])
        record_core_score(meta_path(checkpoint_dir(tag), meta["step"]), result)
        print0(f"Wrote {csv_path} and {json_path}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    modes = parse_modes(args.eval, parser)

    from nanochat_core.common.device import init_distributed, print0, resolve_device_type, shutdown_distributed
    from nanochat_core.tokenizer.bpe import get_tokenizer
    from nanochat_core.model.checkpoint import find_largest_model_tag, load_model
    from nanochat_core.train.core_hook import NOT_AVAILABLE, find_core_evaluator
    from nanochat_core.train.samples import print_samples

    try:
        info = init_distributed(resolve_device_type(args.device_type))
        try:
            tokenizer = get_tokenizer()
            tag = args.model_tag or find_largest_model_tag()  # once: the load and the results files agree
            model, meta = load_model(tag, args.step, device=info.device)
            print0(f"Evaluating {tag} step {meta['step']}")
            if "core" in modes:
                evaluator = find_core_evaluator()
                if evaluator is None:
                    print0(f"{NOT_AVAILABLE}: skipping --eval core")
                else:
                    eval_core(evaluator, model, meta, tokenizer, args, info, tag)
            if "bpb" in modes:
                eval_bpb(model, meta, tokenizer, args, info)
            if "sample" in modes and info.is_master:
                print_samples(model, tokenizer)
        finally:
            shutdown_distributed()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"base_eval: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

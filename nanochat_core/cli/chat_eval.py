"""`python -m nanochat_core.cli.chat_eval`: evaluate a chat model on the chat tasks (nanochat's scripts/chat_eval.py).

Prints each task's accuracy with its standard error and ChatCORE (the mean centered accuracy of
nanochat's five tasks, only when all five ran; `-a Arithmetic` is our generated test split, no data needed),
writes $NANOCHAT_BASE_DIR/chat_eval/<source>_<tag>_<step:06d>.json and .csv (rewritten after every
task, so a stopped run keeps the tasks that finished), and, when all five tasks were asked for, adds
chatcore to the checkpoint's meta json.
Works under torchrun too: each process scores a share of every task's problems and the counts are
summed; rank 0 alone prints and writes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nanochat_core.common import settings
from nanochat_core.cli.arg_types import add_checkpoint_args

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_core.cli.chat_eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_checkpoint_args(p, "which checkpoints to evaluate")
    p.add_argument("-a", "--task-name", type=str, default=None,
                   help="tasks separated by '|' (ARC-Easy|ARC-Challenge|MMLU|GSM8K|HumanEval|Arithmetic); "
                        "None = nanochat's five (all but Arithmetic)")
    p.add_argument("-t", "--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    p.add_argument("-m", "--max-new-tokens", type=int, default=512, help="tokens generated per sample")
    p.add_argument("-n", "--num-samples", type=int, default=1, help="samples per generative problem (pass@n)")
    p.add_argument("-k", "--top-k", type=int, default=50, help="top-k sampling")
    p.add_argument("-b", "--batch-size", type=int, default=8,
                   help="problems per forward (categorical), samples per generation batch (generative)")
    p.add_argument("--batch-tokens", type=int, default=32768,
                   help="generative tasks with one sample each decode many problems at once: at most this many "
                        "positions (rows x (longest prompt + max new tokens)) per batch; 1 row = one at a time")
    p.add_argument("-x", "--max-problems", type=int, default=None, help="problems per task (None = all)")
    p.add_argument("--task-data", type=str, default=None,
                   help="task data root (release files or Hub downloads); default $NANOCHAT_TASK_DATA or "
                        "$NANOCHAT_BASE_DIR/task_data")
    return p


def write_outputs(result: dict, source: str, tag: str, step: int, root: Path, task_names: list[str]) -> None:
    """The results files, and chatcore in the checkpoint's meta when nanochat's five were asked for (rank 0 only)."""
    from nanochat_core.evaluation.chat_eval import write_chat_results
    from nanochat_core.tasks.registry import CHATCORE_TASKS
    from nanochat_core.model.checkpoint import meta_path, update_meta

    json_path = write_chat_results(result, settings.chat_eval_dir(), source, tag, step)
    print(f"Wrote {json_path} and {json_path.with_name(json_path.stem + '.csv')}", flush=True)
    if set(CHATCORE_TASKS) <= set(task_names):
        update_meta(meta_path(root / tag, step), chatcore=result["chatcore"], chatcore_partial=result["partial"])
        print(f"Recorded chatcore in {meta_path(root / tag, step)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from nanochat_core.evaluation.chat_eval import parse_task_names

    try:
        task_names = parse_task_names(args.task_name)
    except ValueError as e:
        parser.error(str(e))
    for flag, value in (("--max-new-tokens", args.max_new_tokens), ("--num-samples", args.num_samples),
                        ("--batch-size", args.batch_size), ("--batch-tokens", args.batch_tokens)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")

    from nanochat_core.chat.loaded_model import load_chat_model
    from nanochat_core.common.device import init_distributed, print0, resolve_device_type, shutdown_distributed
    from nanochat_core.evaluation.chat_eval import evaluate_chat, format_chatcore, write_chat_results
    from nanochat_core.tasks.task_data import task_data_root

    try:
        info = init_distributed(resolve_device_type(args.device_type))
        try:
            chat = load_chat_model(args.source, args.model_tag, args.step, device=info.device)
            model, tokenizer, tag, step, root = chat.model, chat.tokenizer, chat.tag, chat.step, chat.root
            task_data = task_data_root(args.task_data)
            print0(f"Evaluating {args.source} {tag} step {step} on {', '.join(task_names)} (task data {task_data})"
                   + (f" on {info.world_size} processes" if info.is_distributed else ""))
            # rank 0 rewrites the results files after every task: a run stopped later keeps what finished
            keep = (lambda so_far: write_chat_results(so_far, settings.chat_eval_dir(), args.source, tag, step)) \
                if info.is_master else None
            result = evaluate_chat(model, tokenizer, info.device, task_names, task_data=task_data,
                                   max_problems=args.max_problems, batch_size=args.batch_size,
                                   num_samples=args.num_samples, temperature=args.temperature, top_k=args.top_k,
                                   max_new_tokens=args.max_new_tokens, log=print0, context=chat.context,
                                   on_task_done=keep, batch_tokens=args.batch_tokens)
            print0(format_chatcore(result))
            if info.is_master:
                write_outputs(result, args.source, tag, step, root, task_names)
        finally:
            shutdown_distributed()
    except KeyboardInterrupt:
        print("chat_eval: interrupted", file=sys.stderr, flush=True)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"chat_eval: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

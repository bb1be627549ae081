"""Synthetic identity conversations: `python -m nanochat_core.cli.gen_synthetic_data`.

nanochat's dev/gen_synthetic_data.py flags (--num, --workers, --output, --append, --save-metadata)
plus ours: --backend api (OpenRouter or any OpenAI-compatible server, OPENROUTER_API_KEY) or
offline (composed from the knowledge file, no network). Ctrl-C stops cleanly; --append continues
where a run stopped without duplicating conversations.

    python -m nanochat_core.cli.gen_synthetic_data --num 200 --backend offline --output /tmp/identity.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys

from nanochat_core.synthetic import (
    BACKENDS, DEFAULT_BASE_URL, DEFAULT_KNOWLEDGE, DEFAULT_MODEL, SyntheticDataError, generate_conversations,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Generate synthetic identity conversations (JSONL) for SFT.")
    p.add_argument("--num", type=int, default=1000, help="conversations to generate: indices 0..num-1 (default 1000)")
    p.add_argument("--workers", type=int, default=4, help="parallel API requests (default 4; offline ignores it)")
    p.add_argument("--output", default=None, help="output JSONL (default $NANOCHAT_BASE_DIR/identity_conversations.jsonl)")
    p.add_argument("--append", action="store_true",
                   help="keep the existing file and add only the conversations (seed, index) it lacks")
    p.add_argument("--save-metadata", action="store_true",
                   help="add a 'metadata' field (index, seed, topic, persona, dynamics, style, model) to each line")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name for the API (default {DEFAULT_MODEL})")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL,
                   help=f"OpenAI-compatible API base; requests go to <base-url>/chat/completions (default {DEFAULT_BASE_URL})")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    p.add_argument("--max-retries", type=int, default=5, help="retries per conversation after the first try (default 5)")
    p.add_argument("--knowledge", default=None, help=f"knowledge base Markdown file (default the packaged {DEFAULT_KNOWLEDGE.name})")
    p.add_argument("--seed", type=int, default=42, help="seed of the per-conversation topic/persona/style draws (default 42)")
    p.add_argument("--backend", choices=BACKENDS, default="api", help="api (default, as nanochat) or offline (no network)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        stats = generate_conversations(
            num=args.num, output=args.output, backend=args.backend, workers=args.workers, append=args.append,
            save_metadata=args.save_metadata, model=args.model, base_url=args.base_url, timeout=args.timeout,
            max_retries=args.max_retries, knowledge=args.knowledge, seed=args.seed, handle_sigint=True,
        )
    except SyntheticDataError as e:
        print(f"error: {e}", file=sys.stderr)
        done = getattr(e, "stats", None)
        if done:
            print(f"{done['written']} conversations were written to {done['output']} before the error; "
                  "fix it and re-run with --append to continue.", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(stats, indent=2))
    if stats["interrupted"]:
        print(f"interrupted: {stats['total_lines']} conversations in {stats['output']}; "
              "run the same command with --append to continue.", file=sys.stderr)
        return 130
    if stats["failed"]:
        print(f"{stats['failed']} conversations failed after retries; run the same command with --append to retry them.",
              file=sys.stderr)
        return 1
    print(f"wrote {stats['written']} new conversations ({stats['total_lines']} in all) to {stats['output']}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

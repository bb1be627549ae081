"""`python -m nanochat_core.cli.report --model-tag TAG`: write the report card under $NANOCHAT_BASE_DIR/report/<tag>/."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write report/<tag>/report.md and report.json from recorded results.")
    parser.add_argument("--model-tag", default=None, help="model tag (default: the deepest base model's tag)")
    args = parser.parse_args(argv)

    from nanochat_core.report.card import write_report
    from nanochat_core.model.checkpoint import find_largest_model_tag

    tag = args.model_tag
    if tag is None:
        try:
            tag = find_largest_model_tag()
        except FileNotFoundError as e:
            print(f"error: {e}; pass --model-tag", file=sys.stderr)
            return 2
    md_path, json_path = write_report(tag)
    print(f"wrote {md_path}\nwrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

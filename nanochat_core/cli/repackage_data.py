"""Build the pretraining shards: `python -m nanochat_core.cli.repackage_data --source ...`.

The counterpart of nanochat's dev/repackage_data_reference.py (same --chars-per-shard and
--row-group-size defaults, same shard format), with local files and an offline corpus as
sources besides FineWeb-Edu, and an optional upload of the result to the Hub.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nanochat_core.common import settings
from nanochat_core.cli.arg_types import positive_int
from nanochat_core.data.shards import DEFAULT_CHARS_PER_SHARD, DEFAULT_ROW_GROUP_SIZE, DEFAULT_SEED

EPILOG = """\
sources:
  embedded     offline: ~6 MB of English docstrings and docs of the Python standard library and
               the installed dependencies. A stand-in for FineWeb-Edu for demos and tests, not a
               corpus to train a useful model on.
  local        --input files or globs (quote globs: they are expanded here, sorted; '**' recurses),
               or folders. Formats by suffix:
                 .parquet              the --text-field column
                 .jsonl, .jsonl.gz,    one JSON object per line, its --text-field field
                 .json.gz
                 .txt                  one document per non-empty line (one-article-per-line dumps)
  fineweb-edu  HuggingFaceFW/fineweb-edu, sample/100BT, at a pinned --revision, through
               huggingface_hub (HF_TOKEN used when set, HF_ENDPOINT honoured; interrupted
               downloads resume). Files go to the huggingface_hub cache or --download-dir.

The shuffle spills the corpus to disk beside --output-dir (about its size again, temporarily),
so memory stays bounded whatever the corpus size. Existing shards in --output-dir are replaced
only once the new ones are complete.

examples:
  python -m nanochat_core.cli.repackage_data --source embedded --chars-per-shard 1000000
  python -m nanochat_core.cli.repackage_data --source local --input 'corpus/*.jsonl.gz' --text-field content
  python -m nanochat_core.cli.repackage_data --source fineweb-edu --num-files 2 --upload-repo me/my-shards
"""


def build_parser() -> argparse.ArgumentParser:
    from nanochat_core.data.fineweb import FINEWEB_REVISION

    p = argparse.ArgumentParser(
        prog="python -m nanochat_core.cli.repackage_data",
        description="Shuffle a raw text corpus (seeded, globally) into nanochat's parquet shards "
        "(one 'text' column, zstd level 3) plus manifest.json; the last shard is validation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", choices=["embedded", "local", "fineweb-edu"], default="embedded",
                   help="where documents come from (default: embedded; see below)")
    p.add_argument("--input", nargs="+", action="extend", default=[], metavar="PATH_OR_GLOB",
                   help="--source local: files, folders or quoted globs (repeatable)")
    p.add_argument("--text-field", default="text", help="--source local: column/field holding the text (default: text)")
    p.add_argument("--num-files", type=int, default=1,
                   help="--source fineweb-edu: how many parquet files to download, -1 for all (default: 1, ~2 GB)")
    p.add_argument("--revision", default=FINEWEB_REVISION, help="--source fineweb-edu: dataset revision (default: pinned)")
    p.add_argument("--download-dir", type=Path, default=None,
                   help="--source fineweb-edu: download here instead of the huggingface_hub cache")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="shard folder (default: $NANOCHAT_BASE_DIR/base_data)")
    p.add_argument("--chars-per-shard", type=positive_int, default=DEFAULT_CHARS_PER_SHARD,
                   help="target characters per shard; a shard ends at the first row-group boundary past it "
                   "(default: 250,000,000, ~100 MB zstd)")
    p.add_argument("--row-group-size", type=positive_int, default=DEFAULT_ROW_GROUP_SIZE,
                   help="documents per parquet row group (default: 1024)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="shuffle seed (default: 42, nanochat's)")
    p.add_argument("--upload-repo", metavar="OWNER/NAME", default=None,
                   help="afterwards push shards + manifest to this Hub dataset repo (needs HF_TOKEN; resumable)")
    p.add_argument("--private", action="store_true", help="with --upload-repo: create the repo private")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def build_source(args, parser: argparse.ArgumentParser):
    if args.source == "local":
        if not args.input:
            parser.error("--source local needs --input FILE_OR_GLOB [...]")
        from nanochat_core.data.sources import local_source

        return local_source(args.input, args.text_field)
    if args.source == "fineweb-edu":
        from nanochat_core.data.fineweb import fineweb_source

        return fineweb_source(num_files=args.num_files, revision=args.revision, download_dir=args.download_dir)
    from nanochat_core.data.embedded_corpus import embedded_source

    return embedded_source()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.private and not args.upload_repo:
        parser.error("--private only applies with --upload-repo")
    if args.input and args.source != "local":
        parser.error("--input only applies with --source local")
    settings.load_dotenv_file()  # HF_TOKEN for fineweb-edu and --upload-repo

    from nanochat_core.data.shards import RepackageError, repackage
    from nanochat_core.data.sources import SourceError
    from nanochat_core.data.upload import UploadError, upload_shards

    output_dir = args.output_dir if args.output_dir is not None else settings.base_data_dir()
    try:
        if args.upload_repo and not os.environ.get("HF_TOKEN"):
            # Fail before hours of repackaging, not after.
            raise UploadError(f"--upload-repo {args.upload_repo}: HF_TOKEN is not set (export it or put it in .env)")
        source = build_source(args, parser)
        repackage(source, output_dir, chars_per_shard=args.chars_per_shard, row_group_size=args.row_group_size,
                  seed=args.seed, progress=not args.no_progress)
        if args.upload_repo:
            url = upload_shards(output_dir, args.upload_repo, private=args.private)
            print(f"Uploaded {output_dir} to {url}")
    except (SourceError, RepackageError, UploadError) as e:
        print(f"repackage_data: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

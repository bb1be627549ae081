"""Compression of our tokenizer: `python -m nanochat_core.cli.tok_eval`.

Prints bytes/token (higher = better compression) on built-in samples and on our train and val
shards, side by side with tiktoken's gpt2 and cl100k_base when those load (they are downloaded
by tiktoken on first use, so offline they are reported as not available).
"""
from __future__ import annotations

import argparse
import sys
import threading

from nanochat_core.cli.arg_types import positive_int

# Our own short samples, one per kind of text a chat model meets.
SAMPLES = {
    "news": (
        "The city council voted 7-2 on Tuesday to approve a $48 million plan to rebuild the harbour "
        "bridge, which has been closed to heavy trucks since an inspection in March found corroded "
        "steel in two of its supports. Construction is expected to begin next spring and to last about "
        "three years, officials said, during which a temporary ferry service will carry commuters."
    ),
    "korean": (
        "오늘 아침 서울에는 올겨울 들어 가장 많은 눈이 내렸습니다. 기상청은 내일까지 최대 10센티미터의 "
        "눈이 더 올 것으로 예보했으며, 출근길 교통 혼잡에 대비해 대중교통을 이용해 달라고 당부했습니다."
    ),
    "code": (
        "def merge_intervals(intervals):\n"
        "    \"\"\"Merge overlapping [start, end] intervals.\"\"\"\n"
        "    merged = []\n"
        "    for start, end in sorted(intervals):\n"
        "        if merged and start <= merged[-1][1]:\n"
        "            merged[-1][1] = max(merged[-1][1], end)\n"
        "        else:\n"
        "            merged.append([start, end])\n"
        "    return merged\n"
    ),
    "math": (
        "Let $f(x) = x^3 - 6x^2 + 11x - 6$. Since $f(1) = 0$, we factor $f(x) = (x - 1)(x^2 - 5x + 6) "
        "= (x - 1)(x - 2)(x - 3)$. Hence the roots are $x \\in \\{1, 2, 3\\}$ and "
        "$\\int_0^1 f(x)\\,dx = \\frac{1}{4} - 2 + \\frac{11}{2} - 6 = -\\frac{9}{4}$."
    ),
    "science": (
        "Photosynthesis converts light energy into chemical energy: in the chloroplast, chlorophyll "
        "absorbs photons mostly at 430 nm and 662 nm, driving the splitting of water (2H2O -> 4H+ + 4e- + O2). "
        "The electrons reduce NADP+ to NADPH, while the proton gradient powers ATP synthase, and both "
        "feed the Calvin cycle, which fixes CO2 into three-carbon sugars."
    ),
}
REFERENCE_ENCODINGS = ("gpt2", "cl100k_base")


def load_reference_encoding(name: str, timeout: float = 30.0):
    """tiktoken.get_encoding(name), or (None, why) when it cannot be had offline.

    Runs in a daemon thread with a timeout: tiktoken downloads without one, and a firewalled
    network may hang instead of failing.
    """
    import tiktoken

    result: dict = {}

    def load():
        try:
            result["enc"] = tiktoken.get_encoding(name)
        except Exception as e:  # any failure means "not available": no network, no cache
            result["error"] = f"{type(e).__name__}"

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout)
    if "enc" in result:
        return result["enc"], None
    return None, result.get("error", f"timed out after {timeout:.0f}s")


def shard_sample(split: str, max_chars: int) -> str | None:
    """The first max_chars characters of a split's documents, joined by newlines; None without shards."""
    from nanochat_core.data.parquet_files import iter_shard_texts

    try:
        return "\n".join(iter_shard_texts(split=split, max_chars=max_chars))
    except (FileNotFoundError, ValueError) as e:
        print(f"note: no {split} text ({e})")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bytes/token of our tokenizer vs gpt2 and cl100k_base.")
    parser.add_argument("--shard-chars", type=positive_int, default=1_000_000, help="characters of train/val text to measure (default 1e6)")
    args = parser.parse_args(argv)

    from nanochat_core.tokenizer import get_tokenizer

    try:
        ours = get_tokenizer()
    except (FileNotFoundError, ValueError) as e:
        print(f"tok_eval: error: {e}", file=sys.stderr)
        return 2

    encoders = {"ours": ours.encode}
    for name in REFERENCE_ENCODINGS:
        enc, why = load_reference_encoding(name)
        if enc is None:
            print(f"{name}: not available ({why}; tiktoken downloads it on first use and this machine is offline)")
        else:
            encoders[name] = enc.encode_ordinary

    texts = dict(SAMPLES)
    for split in ("train", "val"):
        text = shard_sample(split, args.shard_chars)
        if text:
            texts[f"our-{split}"] = text

    print(format_table(texts, encoders))
    return 0


def format_table(texts: dict[str, str], encoders: dict) -> str:
    """One row per text: its UTF-8 bytes, then tokens and bytes/token per tokenizer."""
    header = f"{'text':<10} {'bytes':>10}" + "".join(f" {n + ' tok':>14} {n + ' B/T':>12}" for n in encoders)
    lines = [header, "-" * len(header)]
    for label, text in texts.items():
        n_bytes = len(text.encode("utf-8"))
        row = f"{label:<10} {n_bytes:>10,}"
        for encode in encoders.values():
            n_tokens = len(encode(text))
            row += f" {n_tokens:>14,} {n_bytes / max(n_tokens, 1):>12.2f}"
        lines.append(row)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

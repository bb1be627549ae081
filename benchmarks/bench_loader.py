"""Loader throughput: tokens/s of pretraining_loader (tokenize + best-fit pack) vs training's need,
with the token cache and without it.

    python benchmarks/bench_loader.py [--train-tokens-per-sec 3000] [--seconds 10] [-B 32 -T 64]
    python benchmarks/bench_loader.py --base-dir $NANOCHAT_BASE_DIR -B 32 -T 64 --tokenizer-threads 1 --batches 2160

--base-dir: the shards (base_data/) and tokenizer of an existing run instead (e.g. a finished demo's
pipeline/demo folder); --batches N: also time each loader through N fresh batches from the start
(one cell's whole run: the demo's d1|2.5e11 cell draws 2160 batches of 32x64), alternating the two.

Text: the public web text in ../shared/data/webtext when present (real documents), else
generated text. A tokenizer (vocab 4096) is trained on it in the script; shards (row groups of
1024 docs) go to a temporary folder. The loader loops over the epochs, so a small corpus measures
steady state: without the cache every epoch re-reads and re-tokenizes; with it (TokenCache, the
default) every epoch after the first is served from memory. Both loaders are first run into their
second epoch, then timed in alternating slices of the same run; the ratio is of batches/s.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nanochat_core.data.loader import pretraining_loader
from nanochat_core.data.token_cache import TokenCache
from nanochat_core.tokenizer.bpe import Tokenizer, get_tokenizer

WEBTEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "webtext" / "llama-factory" / "data"


def load_texts(min_docs: int) -> tuple[list[str], str]:
    texts: list[str] = []
    if (WEBTEXT / "c4_demo.jsonl").is_file():
        texts += [json.loads(line)["text"] for line in (WEBTEXT / "c4_demo.jsonl").open()]
        texts += [line.strip() for line in (WEBTEXT / "wiki_demo.txt").open() if line.strip()]
        source = f"webtext ({WEBTEXT})"
    else:
        rng = random.Random(0)
        words = [("".join(rng.choice("etaoinshrdlucmfwyp") for _ in range(rng.randint(1, 9)))) for _ in range(5000)]
        texts = [" ".join(rng.choice(words) for _ in range(int(rng.expovariate(1 / 400)) + 5)) + "."
                 for _ in range(min_docs)]
        source = "generated"
    # Repeat to fill several row groups, shuffled so each row group mixes short and long docs.
    rng = random.Random(42)
    out = [t for _ in range(max(1, min_docs // len(texts) + 1)) for t in texts]
    rng.shuffle(out)
    return out, source


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-tokens-per-sec", type=float, default=3000.0, help="training consumption to compare with")
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement time after warm-up")
    ap.add_argument("-B", type=int, default=8)
    ap.add_argument("-T", type=int, default=512)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--tokenizer-threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4, help="alternating timed slices per loader")
    ap.add_argument("--base-dir", type=Path, help="use base_data/ and tokenizer/ of this folder")
    ap.add_argument("--batches", type=int, default=0, help="also time N batches from a fresh start, per loader")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.base_dir is not None:
            tok, data_dir = get_tokenizer(args.base_dir), args.base_dir / "base_data"
            train_files = sorted(data_dir.glob("*.parquet"))[:-1]
            texts = [t for f in train_files for t in pq.read_table(f, columns=["text"]).column(0).to_pylist()]
            print(f"text: {data_dir}, {len(texts)} train docs, {sum(map(len, texts)) / 1e6:.1f}M chars; "
                  f"its tokenizer (vocab {tok.get_vocab_size()})")
        else:
            texts, source = load_texts(min_docs=6000)
            t0 = time.perf_counter()
            tok = Tokenizer.train_from_iterator(texts[:2000], vocab_size=args.vocab_size)
            print(f"text: {source}, {len(texts)} docs, {sum(map(len, texts)) / 1e6:.1f}M chars; "
                  f"tokenizer (vocab {args.vocab_size}) trained in {time.perf_counter() - t0:.1f}s")
            half = len(texts) // 2  # two shards: train = the first, val = the last
            for i, part in enumerate((texts[:half], texts[half:])):
                pq.write_table(pa.table({"text": part}), Path(tmp) / f"shard_{i:05d}.parquet",
                               row_group_size=1024, compression="zstd", compression_level=3)
            data_dir, texts = Path(tmp), texts[:half]

        # Tokenizer alone on the same docs: the ceiling the loader's packing overhead is judged by.
        t0 = time.perf_counter()
        n_tok = sum(map(len, tok.encode(texts, num_threads=args.tokenizer_threads)))
        enc_rate = n_tok / (time.perf_counter() - t0)

        if args.batches:
            run_times: dict[str, list[float]] = {"no cache": [], "cache": []}
            for _ in range(2):  # alternating whole runs, each loader from nothing (a fresh cache)
                for name in run_times:
                    c = TokenCache(0) if name == "no cache" else TokenCache()
                    t0 = time.perf_counter()
                    it = pretraining_loader(tok, args.B, args.T, "train", data_dir=data_dir, token_cache=c,
                                            tokenizer_threads=args.tokenizer_threads)
                    for _ in range(args.batches):
                        next(it)
                    run_times[name].append(time.perf_counter() - t0)
            for name, times in run_times.items():
                print(f"{args.batches} batches from a fresh start, {name}: "
                      + ", ".join(f"{t:.2f}s" for t in times))

        cache = TokenCache()
        loaders = {name: pretraining_loader(tok, args.B, args.T, "train", data_dir=data_dir, token_cache=c,
                                            tokenizer_threads=args.tokenizer_threads)
                   for name, c in (("no cache", TokenCache(0)), ("cache", cache))}
        state = {}
        for name, loader in loaders.items():  # warm-up: past the first epoch (the cache is full then)
            while next(loader)[2]["epoch"] < 2:
                pass
        batches, elapsed = dict.fromkeys(loaders, 0), dict.fromkeys(loaders, 0.0)
        for _ in range(args.rounds):  # alternating slices: a load change on the machine hits both
            for name, loader in loaders.items():
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < args.seconds / args.rounds:
                    _, _, state[name] = next(loader)
                    batches[name] += 1
                elapsed[name] += time.perf_counter() - t0
    rate = {name: batches[name] / elapsed[name] for name in loaders}
    print(f"tokenizer alone: {enc_rate:,.0f} tokens/s (encode_ordinary_batch, {args.tokenizer_threads} threads)")
    for name in loaders:
        tokens_per_sec = rate[name] * args.B * args.T
        print(f"loader, {name}: {rate[name]:,.1f} batches/s = {tokens_per_sec:,.0f} tokens/s ({batches[name]} batches "
              f"of {args.B}x{args.T} in {elapsed[name]:.1f}s, epoch reached {state[name]['epoch']}, "
              f"state {len(json.dumps(state[name]))} bytes as JSON); "
              f"{tokens_per_sec / args.train_tokens_per_sec:,.1f}x training at {args.train_tokens_per_sec:,.0f} "
              f"tokens/s (goal >= 10x)")
    print(f"steady state with the cache / without: {rate['cache'] / rate['no cache']:.2f}x batches/s; cache holds "
          f"{cache.tokens:,} tokens in {cache.nbytes / 1e6:.1f} MB ({cache.nbytes / max(cache.tokens, 1):.2f} bytes a "
          f"token, {len(cache)} chunks; {cache.hits} hits, {cache.misses} misses)")


if __name__ == "__main__":
    main()

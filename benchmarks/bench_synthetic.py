"""Synthetic generation throughput: --workers 1 vs --workers 8 against a local API.

The local server (nanochat_core.synthetic.local_server) answers every request after a fixed
latency, standing in for a remote model; generation time is almost all waiting, so bounded
concurrency should speed it up close to the worker count. Each setting runs --repeats times and
the best is kept.

    python benchmarks/bench_synthetic.py [--num 48] [--latency 0.05] [--workers 1 8] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from nanochat_core.synthetic import generate_conversations
from nanochat_core.synthetic.local_server import LocalChatServer


def measure(num: int, workers: int, latency: float, repeats: int) -> float:
    best = 0.0
    with tempfile.TemporaryDirectory() as tmp, LocalChatServer(latency=latency) as srv:
        for r in range(repeats):
            stats = generate_conversations(
                num, Path(tmp) / f"w{workers}_{r}.jsonl", "api", workers=workers, base_url=srv.base_url,
                api_key="local", show_progress=False,
            )
            assert stats["written"] == num, stats
            best = max(best, stats["conversations_per_second"])
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=48)
    p.add_argument("--latency", type=float, default=0.05, help="seconds the server waits before each answer")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    rates = {w: measure(args.num, w, args.latency, args.repeats) for w in args.workers}
    base = rates[args.workers[0]]
    for w, rate in rates.items():
        print(f"workers={w:<3d} {rate:8.1f} conv/s  speed-up x{rate / base:.2f}")
    print(json.dumps({"num": args.num, "latency_s": args.latency,
                      "conv_per_s": {str(w): round(r, 2) for w, r in rates.items()},
                      "speedup": round(rates[args.workers[-1]] / base, 2)}))


if __name__ == "__main__":
    main()

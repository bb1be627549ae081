"""Attention backends side by side: forward and forward+backward time and peak memory at one sequence length
and several sliding windows, each beside SDPA with an explicit mask (the reference) measured in the same run.

Shapes are nanochat's d12 attention (6 heads of 128) at --seq 2048. Each (backend, window) runs in a fresh
process so peak memory is its own: on CUDA torch's allocator peak, on CPU the growth of the process's
resident high-water mark (ru_maxrss) over what the inputs took. Times are the median of --repeats after one
warm-up. A backend that cannot run here (FA3 off CUDA, flex backward on CPU) says why instead of a number.
Each row also gives max |output - reference|, so a fast wrong kernel shows.

    python benchmarks/bench_attention.py [--seq 2048] [--windows 1024,512,256] [--batch 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time

import torch

from nanochat_core.model import attention as A

BACKENDS = (A.REFERENCE, "sdpa", "flex", "fa3")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, repeats: int) -> float:
    fn()  # warm-up (and compile, for flex on CUDA)
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(backend: str, window: int, cfg: dict) -> dict:
    """One (backend, window): times, peak memory, and the output's distance from the reference."""
    device, dtype = torch.device(cfg["device"]), getattr(torch, cfg["dtype"])
    row = {"backend": backend, "window": window}
    train = backend != "flex" or device.type == "cuda"
    try:
        A.resolve_backend(backend, device, dtype, windowed=window < cfg["seq"] - 1, training=train)
    except ValueError as exc:
        return row | {"skipped": str(exc)}
    g = torch.Generator(device=device).manual_seed(0)
    shape = (cfg["batch"], cfg["heads"], cfg["seq"], cfg["head_dim"])
    q, k, v = (torch.randn(shape, generator=g, device=device, dtype=dtype) for _ in range(3))
    masks = A.MaskCache()
    with torch.no_grad():
        ref = A.attend(q, k, v, window, A.REFERENCE, A.MaskCache())
        out = A.attend(q, k, v, window, backend, masks)
        row["max_abs_diff"] = float((out.float() - ref.float()).abs().max())
    del ref, out
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()

    def forward():
        with torch.no_grad():
            A.attend(q, k, v, window, backend, masks)

    row["forward_ms"] = 1000 * _timed(forward, device, cfg["repeats"])
    if train:
        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

        def forward_backward():
            A.attend(qg, kg, vg, window, backend, masks).sum().backward()
            qg.grad = kg.grad = vg.grad = None

        row["fwd_bwd_ms"] = 1000 * _timed(forward_backward, device, cfg["repeats"])
    else:
        row["fwd_bwd_note"] = f"no backward on {device.type} in torch {torch.__version__}"
    if device.type == "cuda":
        row["peak_mib"] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:  # ru_maxrss is in KiB on Linux
        row["peak_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return row


def _child(backend, window, cfg, queue):
    torch.set_num_threads(cfg["threads"])
    try:
        queue.put(measure(backend, window, cfg))
    except Exception as exc:  # report, do not hang the parent
        queue.put({"backend": backend, "window": window, "error": f"{type(exc).__name__}: {exc}"})


def run_isolated(backend: str, window: int, cfg: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(backend, window, cfg, queue))
    proc.start()
    row = queue.get()
    proc.join()
    return row


def format_table(rows: list[dict]) -> str:
    ref = {r["window"]: r for r in rows if r["backend"] == A.REFERENCE}
    lines = [f"{'window':>6}  {'backend':<10} {'fwd ms':>9} {'fwd+bwd ms':>11} {'peak MiB':>9} "
             f"{'fwd+bwd vs mask':>16} {'max|diff|':>10}"]
    for r in rows:
        head = f"{r['window']:>6}  {r['backend']:<10}"
        if "skipped" in r or "error" in r:
            lines.append(f"{head} not run: {r.get('skipped') or r.get('error')}")
            continue
        base = ref.get(r["window"], {})
        fb = r.get("fwd_bwd_ms")
        speed = (f"{base['fwd_bwd_ms'] / fb:.2f}x" if fb and base.get("fwd_bwd_ms") else
                 f"fwd {base['forward_ms'] / r['forward_ms']:.2f}x" if base.get("forward_ms") else "-")
        fb_text = f"{fb:11.1f}" if fb else f"{'n/a':>11}"
        lines.append(f"{head} {r['forward_ms']:9.1f} {fb_text} {r['peak_mib']:9.1f} {speed:>16} "
                     f"{r['max_abs_diff']:10.1e}" + (f"  ({r['fwd_bwd_note']})" if "fwd_bwd_note" in r else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--windows", type=str, default="1024" if cuda else "1024,512,256",
                   help="comma-separated left windows (each beside SDPA with a mask)")
    p.add_argument("--batch", type=int, default=8 if cuda else 1)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10 if cuda else 3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--backends", type=str, default=",".join(BACKENDS))
    p.add_argument("--json", type=str, default=None, help="also write the rows here")
    a = p.parse_args(argv)
    cfg = {"device": "cuda" if cuda else "cpu", "dtype": "bfloat16" if cuda else "float32", "seq": a.seq,
           "batch": a.batch, "heads": a.heads, "head_dim": a.head_dim, "repeats": a.repeats, "threads": a.threads}
    where = torch.cuda.get_device_name() if cuda else f"CPU, {a.threads} threads"
    print(f"attention at seq {a.seq}, batch {a.batch}, {a.heads} heads x {a.head_dim}, {cfg['dtype']}, on {where}; "
          f"median of {a.repeats}")
    rows = []
    for window in [int(w) for w in a.windows.split(",")]:
        for backend in a.backends.split(","):
            rows.append(run_isolated(backend, window, cfg))
            print(format_table([r for r in rows if r["window"] == window]).splitlines()[-1], flush=True)
    print()
    print(format_table(rows))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump({"config": cfg, "device": where, "rows": rows}, f, indent=1)
        import os
        os.replace(a.json + ".tmp", a.json)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

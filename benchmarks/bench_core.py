"""CORE scoring speed at depth 4: examples/s batched (many examples' prompts per forward) vs one example at a time.

    python benchmarks/bench_core.py [--examples 96] [--batch-size 8]

One example at a time is nanochat's way (each example's choice prompts in one forward pass);
ours packs prompts of many examples, sorted by length, into each forward. Both score the same
examples of a generated bundle (multiple_choice with 4 choices, 2-shot, and language_modeling,
1-shot) with the same d4 model (nanochat's shape, head-dim 64, seq 512, random init, fp32), so
their per-example results must agree exactly; the script checks that before printing the ratio.
Measured on 2 CPU cores: x1.12 at 8 rows per forward, x0.87 at 32. On a CPU the gain is small, and
past ~16 rows the elementwise ops over bigger activations outgrow the caches; batching is for GPUs.
Both paths compute lm_head at the scored span positions only (x1.3 over full logits).
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from nanochat_core.evaluation.core_scoring import crop_example, is_correct, score_rows
from nanochat_core.evaluation.core_tasks import build_example, load_rows, load_tasks
from nanochat_core.model.gpt import GPT
from nanochat_core.model.sizing import build_model_config
from nanochat_core.tokenizer.bpe import Tokenizer


def sentence(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n)).capitalize()


def write_bundle(root: Path, n: int, rng: random.Random) -> list[str]:
    words = ["".join(rng.choice("etaoinshrdlucmfwyp") for _ in range(rng.randint(2, 8))) for _ in range(3000)]
    (root / "eval_data").mkdir(parents=True)
    mc = [{"query": sentence(rng, words, rng.randint(15, 40)), "choices": [sentence(rng, words, rng.randint(3, 12))
                                                                          for _ in range(4)], "gold": rng.randrange(4)}
          for _ in range(n)]
    lm = [{"context": sentence(rng, words, rng.randint(20, 60)), "continuation": sentence(rng, words, rng.randint(2, 6))}
          for _ in range(n)]
    for name, rows in (("mc", mc), ("lm", lm)):
        (root / "eval_data" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "core.yaml").write_text(
        "icl_tasks:\n"
        "- {label: mc, dataset_uri: mc.jsonl, num_fewshot: [2], icl_task_type: multiple_choice}\n"
        "- {label: lm, dataset_uri: lm.jsonl, num_fewshot: [1], icl_task_type: language_modeling}\n")
    (root / "eval_meta_data.csv").write_text("Eval Task,Random baseline\nmc,25\nlm,0\n")
    return [" ".join(rng.choice(words) for _ in range(200)) for _ in range(400)]


def examples_of(bundle: Path, tok, context: int):
    out = []
    for spec in load_tasks(bundle):
        rows = load_rows(spec.data_path, -1)
        for idx in range(len(rows)):
            ex = build_example(spec, rows, idx, tok)
            out.append((spec.task_type, ex.gold, crop_example(ex, context)))
    return out


def timed(fn) -> tuple[list[bool], float]:
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=96, help="rows per task (two tasks)")
    ap.add_argument("--batch-size", type=int, default=8, help="rows per forward (CPU-friendly; base_eval's default is 32)")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        texts = write_bundle(bundle, args.examples, rng)
        tok = Tokenizer.train_from_iterator(texts, vocab_size=4096)
        config = build_model_config(4, tok.get_vocab_size(), max_seq_len=512, head_dim=64, window_pattern="L")
        model = GPT(config)
        model.init_weights()
        with torch.no_grad():  # init zeroes output projections; give every layer something to compute
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        model.eval()
        examples = examples_of(bundle, tok, 512)
        pad = tok.get_bos_token_id()

        def one_at_a_time():
            return [is_correct(kind, gold, score_rows(model, rows, pad, "cpu", len(rows))) for kind, gold, rows in examples]

        def batched():
            flat = [r for _, _, rows in examples for r in rows]
            scores = score_rows(model, flat, pad, "cpu", args.batch_size)
            out, pos = [], 0
            for kind, gold, rows in examples:
                out.append(is_correct(kind, gold, scores[pos:pos + len(rows)]))
                pos += len(rows)
            return out

        batched()  # warm-up (allocator, kernels)
        single, t_single = timed(one_at_a_time)
        packed, t_packed = timed(batched)
    if single != packed:
        raise SystemExit("batched and one-at-a-time results differ: the benchmark is not comparing like with like")
    n = len(examples)
    prompts = sum(len(rows) for _, _, rows in examples)
    print(f"d4 (dim {config.n_embd}, vocab {config.vocab_size}), {n} examples / {prompts} prompts, "
          f"torch threads {torch.get_num_threads()}")
    print(f"one example at a time: {n / t_single:8.1f} examples/s ({t_single:.2f}s)")
    print(f"batched ({args.batch_size} rows/forward): {n / t_packed:8.1f} examples/s ({t_packed:.2f}s)")
    print(f"speed-up: x{t_single / t_packed:.2f}")


if __name__ == "__main__":
    main()

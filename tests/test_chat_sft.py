"""chat_sft end to end on a tiny base model: real torch steps on release-format task data and JSONL files."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from nanochat_core.cli import chat_sft
from nanochat_core.data.sft_loader import render_masked
from nanochat_core.tasks import task_data
from nanochat_core.tokenizer.bpe import get_tokenizer
from nanochat_core.train.args import parse_args
from nanochat_core.train.base_trainer import train_base
from nanochat_core.train.sft_mixture import build_sft_data
from nanochat_core.train.sft_trainer import make_sft_args, train_sft
from helpers import write_conversations, write_jsonl, write_task_data
from train_fixtures import TINY_FLAGS, build_base, sigint_at_line

BASE_STEPS = 6
STEP_LINE = re.compile(r"^step (\d{5})(?:/(\d{5}))? \((\d+\.\d{2})%\) \| loss: (\d+\.\d{6}) \| lrm: \d+\.\d{2} \| "
                       r"dt: \d+\.\d{2}ms \| tok/sec: [\d,]+ \| mfu: \d+\.\d{2} \| epoch: \d+ \| total time: \d+\.\d{2}m$")
VAL_LINE = re.compile(r"^Step (\d{5}) \| Validation bpb: \d+\.\d{6}$")
# rows of 128 tokens so MMLU's multiple-choice prompts fit; LRs high enough for a tiny model to move in a few steps
SFT_FLAGS = ["--device-type", "cpu", "--peak-flops", "1e11", "--chatcore-every", "-1", "--eval-tokens", "1024",
             "--max-seq-len", "128", "--total-batch-size", "512", "--compile", "0"]
FAST_LRS = ["--matrix-lr", "0.5", "--embedding-lr", "5", "--unembedding-lr", "0.2"]


@pytest.fixture(scope="module")
def trained_base(tmp_path_factory):
    root = build_base(tmp_path_factory.mktemp("sft_base"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NANOCHAT_BASE_DIR", str(root))
        train_base(parse_args(TINY_FLAGS + ["--num-iterations", str(BASE_STEPS), "--eval-every", "-1"]))
    write_task_data(root / "task_data", smoltalk=(30, 6), mmlu=(6, 6), gsm8k=(6, 4))
    return root


@pytest.fixture
def base(trained_base, tmp_path, monkeypatch, one_torch_thread):
    root = tmp_path / "base"
    root.mkdir()
    for name in ("base_data", "tokenizer", "base_checkpoints", "task_data"):
        (root / name).symlink_to(trained_base / name, target_is_directory=True)
    write_conversations(root / "identity_conversations.jsonl", 4, seed=1, tag="id")
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # absent sources are reported without a network try
    monkeypatch.setattr(task_data, "_unreachable", None)
    return root


def user_file(root, n=8, long=1):
    """n short conversations plus `long` ones too long for any row used here."""
    path = write_conversations(root / "mine.jsonl", n, seed=2, tag="my")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows += [{"messages": [{"role": "user", "content": "tell me everything"},
                           {"role": "assistant", "content": "the cat sees a red ball in the park. " * 30}]}] * long
    return write_jsonl(path, rows)


def sft_args(root, **overrides):
    args = chat_sft.parse_sft_args(SFT_FLAGS + ["--task-data", str(root / "task_data")])
    return make_sft_args(**{**vars(args), **overrides})


def test_cli_trains_logs_the_mixture_and_writes_checkpoint(base, capsys):
    mine = user_file(base)
    rc = chat_sft.main([str(mine), *SFT_FLAGS, *FAST_LRS, "--task-data", str(base / "task_data"),
                        "--num-iterations", "24", "--eval-every", "8"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for line in ("SFT mixture: 89 conversations, shuffled with seed 42", "  SmolTalk train: 30 conversations",
                 "  MMLU auxiliary_train: 6 conversations x 3 epochs = 18",
                 "  GSM8K train: 6 conversations x 4 epochs = 24",
                 f"  identity {base / 'identity_conversations.jsonl'}: 4 conversations x 2 epochs = 8",
                 f"  CustomJSON {mine}: 9 conversations", "SFT validation: 16 conversations (the test splits)",
                 "Inherited device_batch_size=4 from the base checkpoint",
                 "--max-seq-len 128 overrides the base checkpoint's 64"):
        assert line in out.splitlines(), line
    steps = [m.groups() for line in out.splitlines() if (m := STEP_LINE.match(line))]
    assert [int(s[0]) for s in steps] == list(range(24)) and steps[6][1:3] == ("00024", "25.00")
    assert [m.group(1) for line in out.splitlines() if (m := VAL_LINE.match(line))] == ["00000", "00008", "00016", "00024"]
    losses = [float(s[3]) for s in steps]
    assert losses[-1] < losses[0] - 0.3, losses  # the smoothed SFT loss falls

    ckpt_dir = base / "chatsft_checkpoints" / "d2"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["meta_000024.json", "model_000024.pt", "optim_000024_rank0.pt"]
    meta = json.loads((ckpt_dir / "meta_000024.json").read_text())
    assert meta["step"] == 24 and meta["val_bpb"] > 0 and meta["finished"]
    assert (meta["base_model_tag"], meta["base_step"]) == ("d2", BASE_STEPS)
    assert meta["max_seq_len"] == 128 and meta["device_batch_size"] == 4 and meta["model_config"]["n_embd"] == 64
    assert meta["user_config"]["device_batch_size"] == 4 and meta["user_config"]["jsonl"] == [str(mine)]
    assert meta["mixture"]["train_conversations"] == 89 and meta["mixture"]["val_conversations"] == 16
    assert meta["conversations_too_long"] == 1  # the long one in mine.jsonl, counted once however often read
    assert set(meta["loop_state"]) == {"min_val_bpb", "smooth_train_loss", "total_training_time"}
    assert "  left out:" not in out  # every source present


def test_warm_start_loads_the_base_optimizer_state_and_resets_lrs(base):
    base_optim = torch.load(base / "base_checkpoints" / "d2" / f"optim_{BASE_STEPS:06d}_rank0.pt", weights_only=True)
    warm = train_sft(make_sft_args(device_type="cpu", peak_flops=1e11, chatcore_every=-1, eval_every=-1,
                                   num_iterations=0, output_tag="warm", task_data=str(base / "task_data")))
    cold = train_sft(make_sft_args(device_type="cpu", peak_flops=1e11, chatcore_every=-1, eval_every=-1,
                                   num_iterations=0, output_tag="cold", load_optimizer=0, device_batch_size="auto",
                                   task_data=str(base / "task_data")))
    assert cold["device_batch_size"] == 4  # auto: 256 tokens / 64 = 4 rows
    saved = {tag: torch.load(base / "chatsft_checkpoints" / tag / "optim_000000_rank0.pt", weights_only=True)
             for tag in ("warm", "cold")}
    assert warm["step"] == 0 and not saved["cold"]["state"]
    state = saved["warm"]["state"]
    assert state.keys() == base_optim["state"].keys() and len(state) > 10
    kinds = set()
    for index, buffers in base_optim["state"].items():
        for name, value in buffers.items():
            kinds.add(name)
            assert torch.equal(torch.as_tensor(state[index][name]), torch.as_tensor(value)), (index, name)
    assert {"momentum_buffer", "second_momentum_buffer", "exp_avg", "exp_avg_sq"} <= kinds
    for ours, theirs in zip(saved["warm"]["param_groups"], base_optim["param_groups"]):
        # same batch as the base run: its peak LRs times --init-lr-frac 0.8; no weight decay in SFT
        assert ours["initial_lr"] == pytest.approx(0.8 * theirs["initial_lr"], rel=1e-9)
        assert ours["kind"] != "muon" or (ours["weight_decay"] == 0.0 and theirs["weight_decay"] > 0)


def test_warm_start_from_another_number_of_processes_is_refused(base, tmp_path):
    # a base checkpoint saved by 2 processes: its rank-0 optimizer file holds only half the state
    two = (base / "base_checkpoints" / "d2").resolve()
    copy = tmp_path / "two_procs"
    copy.mkdir()
    for f in two.iterdir():
        (copy / f.name).symlink_to(f)
    meta_name = f"meta_{BASE_STEPS:06d}.json"
    (copy / meta_name).unlink()
    (copy / meta_name).write_text(json.dumps({**json.loads((two / meta_name).read_text()), "world_size": 2}))
    (base / "base_checkpoints").unlink()
    (base / "base_checkpoints").mkdir()
    (base / "base_checkpoints" / "d2x2").symlink_to(copy, target_is_directory=True)
    with pytest.raises(ValueError, match=r"sharded over 2 process\(es\), this run has 1; .*--load-optimizer 0"):
        train_sft(sft_args(base, model_tag="d2x2"))
    assert not (base / "chatsft_checkpoints").exists()
    summary = train_sft(sft_args(base, model_tag="d2x2", load_optimizer=0, num_iterations=1, eval_every=-1))
    assert summary["step"] == 1 and summary["model_tag"] == "d2x2"


def expected_too_long(root, args, state) -> int:
    """The distinct long mixture entries one rank has read, from the mixture and the loader's position."""
    data = build_sft_data(root / "task_data", root / "identity_conversations.jsonl", args.jsonl, 3, 4)
    tok, n = get_tokenizer(), len(data.train)
    long = [len(render_masked(tok, data.train[i])[0]) > args.max_seq_len + 1 for i in range(n)]
    reads = (state["epoch"] - 1) * n + state["cursor"]
    return sum(long[:min(reads, n)])


def test_one_epoch_run_resumes_to_the_same_result(base):
    mine = user_file(base, long=2)
    common = dict(jsonl=[str(mine)], eval_every=-1, matrix_lr=0.5, embedding_lr=5.0)
    full = []
    summary = train_sft(sft_args(base, save_every=3, **common), on_metrics=full.append)
    last = summary["step"]
    assert 4 < last < 20 and summary["epoch_progress"] >= 1.0 and summary["num_iterations"] == last
    ckpt_dir = base / "chatsft_checkpoints" / "d2"
    final = torch.load(ckpt_dir / f"model_{last:06d}.pt", weights_only=True)
    (ckpt_dir / f"meta_{last:06d}.json").rename(ckpt_dir / "uninterrupted.json")
    meta3 = json.loads((ckpt_dir / "meta_000003.json").read_text())
    assert not meta3["finished"] and meta3["num_iterations"] == -1 and 0 < meta3["epoch_progress"] < 1

    resumed = []
    again = train_sft(sft_args(base, resume_from_step=3, **common), on_metrics=resumed.append)
    assert again["step"] == last
    losses = lambda ms: [(m["step"], m["raw_loss"], m["loss"], m["lrm"]) for m in ms if "raw_loss" in m]  # noqa: E731
    assert losses(resumed) == [x for x in losses(full) if x[0] >= 3]
    after = torch.load(ckpt_dir / f"model_{last:06d}.pt", weights_only=True)
    assert all(torch.equal(final[k], after[k]) for k in final)
    meta = json.loads((ckpt_dir / f"meta_{last:06d}.json").read_text())
    assert meta == {**json.loads((ckpt_dir / "uninterrupted.json").read_text()), "user_config": meta["user_config"],
                    "loop_state": meta["loop_state"], "throughput": meta["throughput"]}  # timings differ
    state = meta["dataloader_state_dict"]["ranks"][0]
    assert meta["conversations_too_long"] == expected_too_long(base, sft_args(base, **common), state) > 0

    write_conversations(base / "more.jsonl", 3, seed=4, tag="mo")
    with pytest.raises(ValueError, match="different mixture.train_conversations"):
        train_sft(sft_args(base, resume_from_step=3, **{**common, "jsonl": [str(mine), str(base / "more.jsonl")]}))


def test_extra_keys_jsonl_trains_with_one_warning_naming_them(base, capsys, recwarn):
    # A real data set's lines (OASST: message_tree_id on every line, lang on some) train as they are.
    mine = user_file(base, n=6, long=0)
    rows = [json.loads(line) | {"message_tree_id": f"tree-{i}"} | ({"lang": "en"} if i % 2 else {})
            for i, line in enumerate(mine.read_text().splitlines())]
    write_jsonl(mine, rows)
    rc = chat_sft.main([str(mine), *SFT_FLAGS, "--task-data", str(base / "task_data"), "--num-iterations", "2",
                        "--eval-every", "-1"])
    assert rc == 0, capsys.readouterr()
    assert f"  CustomJSON {mine}: 6 conversations" in capsys.readouterr().out.splitlines()
    ours = [str(w.message) for w in recwarn if "ignored top-level key" in str(w.message)]
    assert ours == [f"{mine}: ignored top-level key(s) ['lang', 'message_tree_id'] on 6 line(s); only 'messages' "
                    "(and 'metadata') are read"]
    assert (base / "chatsft_checkpoints" / "d2" / "model_000002.pt").is_file()


def test_malformed_jsonl_stops_before_training_with_file_and_line(base, capsys):
    bad = base / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                   '{"messages": [{"role": "assistant", "content": "no user first"}, {"role": "user", "content": "x"}]}\n')
    rc = chat_sft.main([str(bad), *SFT_FLAGS, "--task-data", str(base / "task_data")])
    captured = capsys.readouterr()
    assert rc == 1 and f"chat_sft: error: {bad}:2: " in captured.err
    assert "step 00000" not in captured.out and not (base / "chatsft_checkpoints").exists()
    with pytest.raises(SystemExit) as exit_info:
        chat_sft.main([*SFT_FLAGS, "--warmdown-ratio", "1.5"])
    assert exit_info.value.code == 2 and "--warmdown-ratio must be in [0.0, 1.0]" in capsys.readouterr().err


@pytest.mark.slow  # two processes (gloo) on two cores
def test_torchrun_two_processes(base):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "nanochat_core.cli.chat_sft", *SFT_FLAGS, "--task-data", str(base / "task_data"),
           "--eval-every", "2", "--eval-tokens", "2048", "--device-batch-size", "2", "--load-optimizer", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [m.group(1) for line in proc.stdout.splitlines() if (m := STEP_LINE.match(line))]
    assert steps and steps == sorted(set(steps))  # one log, from rank 0
    ckpt_dir = base / "chatsft_checkpoints" / "d2"
    last = int(steps[-1]) + 1
    assert {p.name for p in ckpt_dir.iterdir()} == {f"meta_{last:06d}.json", f"model_{last:06d}.pt",
                                                    f"optim_{last:06d}_rank0.pt", f"optim_{last:06d}_rank1.pt"}
    meta = json.loads((ckpt_dir / f"meta_{last:06d}.json").read_text())
    ranks = meta["dataloader_state_dict"]["ranks"]
    assert [s["rank"] for s in ranks] == [0, 1] and meta["world_size"] == 2 and meta["finished"]
    assert sum(s["consumed"] for s in ranks) >= meta["mixture"]["train_conversations"]


def test_chatcore_runs_periodically_and_is_recorded(base, capsys):
    seen = []
    summary = train_sft(sft_args(base, num_iterations=2, eval_every=-1, chatcore_every=1, chatcore_max_cat=2,
                                 chatcore_max_sample=1), on_metrics=seen.append)
    out = capsys.readouterr().out
    # ARC and HumanEval have no data here: a partial ChatCORE, no made-up number
    assert [m["step"] for m in seen if "chatcore" in m] == [1, 2] and summary["chatcore_partial"] is True
    assert "Step 00002 | ChatCORE: n/a (partial: some tasks were left out)" in out and "MMLU: accuracy" in out
    meta = json.loads((base / "chatsft_checkpoints" / "d2" / "meta_000002.json").read_text())
    assert meta["chatcore"] is None and meta["chatcore_partial"] is True


def test_sigint_saves_a_resumable_checkpoint(base):
    cmd = [sys.executable, "-u", "-m", "nanochat_core.cli.chat_sft", *SFT_FLAGS, "--task-data", str(base / "task_data"),
           "--num-iterations", "100000", "--eval-every", "-1"]
    proc, lines, rest = sigint_at_line(cmd, "step 00002/")
    assert proc.returncode == 0, "".join(lines) + rest
    assert "Interrupted by signal" in rest
    metas = list((base / "chatsft_checkpoints" / "d2").glob("meta_*.json"))
    assert len(metas) == 1
    meta = json.loads(metas[0].read_text())
    assert meta["step"] >= 3 and not meta["finished"] and meta["dataloader_state_dict"]["ranks"][0]["consumed"] > 0
    resumed = train_sft(sft_args(base, resume_from_step=meta["step"], num_iterations=meta["step"] + 1, eval_every=-1))
    assert resumed["step"] == meta["step"] + 1 and not resumed["interrupted"]

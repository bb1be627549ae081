"""base_train and base_eval end to end on a tiny model: real torch steps, a few seconds each."""
import json
import re
import sys

import pytest

from nanochat_core.cli import base_eval, base_train
from nanochat_core.train.args import make_args, parse_args
from nanochat_core.train.base_trainer import train_base
from train_fixtures import TINY_FLAGS, build_base, link_base, sigint_at_line

# tiny models: a second OpenMP thread only waits on the first (several times slower on a busy machine)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEP_LINE = re.compile(r"^step (\d{5})/(\d{5}) \((\d+\.\d{2})%\) \| loss: \d+\.\d{6} \| lrm: \d+\.\d{2} \| "
                       r"dt: \d+\.\d{2}ms \| tok/sec: [\d,]+ \| mfu: \d+\.\d{2} \| total time: \d+\.\d{2}m$")
VAL_LINE = re.compile(r"^Step (\d{5}) \| Validation bpb: \d+\.\d{6}$")


@pytest.fixture(scope="session")
def shared_base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("train_shared"))


@pytest.fixture
def base(shared_base, tmp_path, monkeypatch):
    root = link_base(shared_base, tmp_path / "base")
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(root))
    return root


def tiny_args(**overrides):
    args = parse_args(TINY_FLAGS)
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def test_cli_run_writes_checkpoint_and_nanochat_log_lines(base, capsys):
    rc = base_train.main(TINY_FLAGS + ["--num-iterations", "4", "--eval-every", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    steps = [m.groups() for line in out.splitlines() if (m := STEP_LINE.match(line))]
    assert [s[0] for s in steps] == ["00000", "00001", "00002", "00003"]
    assert steps[1][1:] == ("00004", "25.00")
    assert [m.group(1) for line in out.splitlines() if (m := VAL_LINE.match(line))] == ["00000", "00002", "00004"]
    assert "torch.compile: off (auto:" in out  # a tiny CPU run would not repay compiling
    ckpt_dir = base / "base_checkpoints" / "d2"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["meta_000004.json", "model_000004.pt",
                                                        "optim_000004_rank0.pt"]
    meta = json.loads((ckpt_dir / "meta_000004.json").read_text())
    assert meta["step"] == 4 and meta["val_bpb"] > 0 and meta["total_batch_size"] == 256
    assert meta["model_config"]["n_embd"] == 64 and meta["user_config"]["depth"] == 2
    assert {"pq_idx", "rg_idx", "epoch"} <= set(meta["dataloader_state_dict"])
    assert set(meta["loop_state"]) == {"min_val_bpb", "smooth_train_loss", "total_training_time"}


def test_indivisible_batch_size_errors_and_writes_nothing(base, capsys):
    rc = base_train.main(TINY_FLAGS + ["--num-iterations", "2", "--total-batch-size", "300"])
    err = capsys.readouterr().err
    assert rc == 1 and "--total-batch-size 300" in err and "--device-batch-size 4" in err
    assert not (base / "base_checkpoints").exists()


def test_missing_tokenizer_data_or_checkpoint_errors_name_the_file(shared_base, tmp_path, monkeypatch, capsys):
    root = tmp_path / "base"
    root.mkdir()
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(root))
    assert base_train.main(TINY_FLAGS) == 1
    assert "tokenizer.pkl" in capsys.readouterr().err
    (root / "tokenizer").symlink_to(shared_base / "tokenizer", target_is_directory=True)
    assert base_train.main(TINY_FLAGS) == 1
    assert "base_data" in capsys.readouterr().err
    (root / "base_data").symlink_to(shared_base / "base_data", target_is_directory=True)
    assert base_train.main(TINY_FLAGS + ["--resume-from-step", "7"]) == 1
    assert "base_checkpoints/d2" in capsys.readouterr().err
    assert not (root / "base_checkpoints").exists()


@pytest.mark.parametrize("flag,value", [("--warmup-ratio", "1.5"), ("--warmdown-ratio", "-0.1"),
                                        ("--init-lr-frac", "2"), ("--final-lr-frac", "abc")])
def test_lr_fraction_outside_unit_interval_is_refused(base, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        base_train.main(TINY_FLAGS + [flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
    assert not (base / "base_checkpoints").exists()
    with pytest.raises(ValueError, match=flag):
        make_args(**{flag[2:].replace("-", "_"): 1.5})


def test_help_documents_the_fraction_range(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for flag in ("--warmup-ratio", "--warmdown-ratio", "--init-lr-frac", "--final-lr-frac"):
        assert re.search(re.escape(flag) + r" \w+ [^-]*in \[0\.0, 1\.0\]", help_text), flag


def test_resume_reproduces_the_uninterrupted_losses(base):
    # grad accumulation 2 and several row groups, so resume must restore the exact data position
    common = dict(num_iterations=8, total_batch_size=512, eval_every=-1)
    full = []
    summary = train_base(tiny_args(save_every=4, **common), on_metrics=full.append)
    assert summary["step"] == 8 and summary["grad_accum_steps"] == 2
    resumed = []
    train_base(tiny_args(resume_from_step=4, **common), on_metrics=resumed.append)
    full_after = [(m["step"], m["raw_loss"], m["loss"]) for m in full if m["step"] >= 4]
    assert [(m["step"], m["raw_loss"], m["loss"]) for m in resumed] == full_after


def test_summary_and_callback(base):
    seen = []
    # make_args: how the pipeline builds its args (the CLI's defaults and validation, no argv)
    args = make_args(**{**vars(tiny_args()), "num_iterations": 3, "eval_every": 3, "model_tag": "cb"})
    summary = train_base(args, on_metrics=seen.append)
    steps = [m for m in seen if "loss" in m]
    assert [m["step"] for m in steps] == [0, 1, 2]
    assert {"step", "loss", "lrm", "dt", "tok_per_sec", "mfu"} <= set(steps[0])
    assert [m["step"] for m in seen if "val_bpb" in m] == [0, 3]
    assert summary["val_bpb"] == seen[-1]["val_bpb"]
    assert summary["tokens_trained"] == 3 * 256 and summary["checkpoint_dir"].endswith("cb")
    for key in ("final_loss", "tokens_per_sec", "mfu", "param_counts", "training_seconds", "total_flops"):
        assert summary[key] is not None, key


def test_auto_device_batch_size_says_what_it_chose(base, capsys):
    summary = train_base(tiny_args(device_batch_size="auto", num_iterations=1, eval_every=-1))
    assert summary["device_batch_size"] == 4  # 256 tokens / 64 = 4 rows: the largest power of two dividing it
    assert "--device-batch-size auto: chose 4" in capsys.readouterr().out


def test_fp8_and_wandb_refused_clearly_on_cpu(base, capsys):
    assert base_train.main(TINY_FLAGS + ["--fp8"]) == 1
    assert "--fp8 needs a CUDA GPU with compute capability 9.0+" in capsys.readouterr().err
    try:
        import wandb  # noqa: F401
    except ImportError:
        assert base_train.main(TINY_FLAGS + ["--run", "myrun"]) == 1
        assert "wandb, which is not installed" in capsys.readouterr().err
    assert not (base / "base_checkpoints").exists()


def test_sigint_saves_a_checkpoint_and_exits_cleanly(base):
    cmd = [sys.executable, "-u", "-m", "nanochat_core.cli.base_train", *TINY_FLAGS,
           "--num-iterations", "100000", "--eval-every", "-1", "--compile", "0"]
    proc, lines, rest = sigint_at_line(cmd, "step 00002/")
    assert proc.returncode == 0, "".join(lines) + rest
    assert "Interrupted by signal" in rest
    metas = list((base / "base_checkpoints" / "d2").glob("meta_*.json"))
    assert len(metas) == 1
    step = json.loads(metas[0].read_text())["step"]
    assert step >= 3 and (base / "base_checkpoints" / "d2" / f"model_{step:06d}.pt").exists()


def test_base_eval_bpb_and_samples(base, capsys):
    assert base_train.main(TINY_FLAGS + ["--num-iterations", "2", "--eval-every", "-1"]) == 0
    capsys.readouterr()
    rc = base_eval.main(["--eval", "bpb,sample", "--device-batch-size", "4", "--split-tokens", "600",
                         "--device-type", "cpu"])  # --eval core: tests/test_core_eval.py
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"^train bpb: \d+\.\d{6}$", out, re.M) and re.search(r"^val bpb: \d+\.\d{6}$", out, re.M)
    assert "The capital of France is" in out
    assert base_eval.main(["--eval", "bpb", "--model-tag", "d7"]) == 1
    assert "no checkpoint folder" in capsys.readouterr().err


@pytest.mark.slow  # a cold torch.compile takes ~20 s on 2 cores (depth 1: a second layer only lengthens the trace)
def test_compiled_run_saves_clean_keys(base, capsys):
    import torch

    flags = ["--depth", "1", "--num-iterations", "2", "--eval-every", "-1", "--compile", "1"]
    assert base_train.main(TINY_FLAGS + flags) == 0
    assert "torch.compile: on (--compile 1)" in capsys.readouterr().out
    state = torch.load(base / "base_checkpoints" / "d1" / "model_000002.pt", weights_only=True)
    assert not [k for k in state if k.startswith("_orig_mod.")]

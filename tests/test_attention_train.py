"""base_train's --attention: the choice is logged with its reason and recorded in the checkpoint meta; a forced
backend this machine cannot run stops the run before any checkpoint, naming the flag and the reason."""
import json

import pytest

from nanochat_core.cli import base_train
from train_fixtures import TINY_FLAGS, build_base, link_base

FLAGS = TINY_FLAGS + ["--num-iterations", "1", "--eval-every", "-1", "--window-pattern", "SL", "--compile", "0"]


@pytest.fixture(scope="module")
def shared_base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("attention_train"), n_docs=300)


@pytest.fixture
def base(shared_base, tmp_path, monkeypatch):
    root = link_base(shared_base, tmp_path / "base")
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(root))
    return root


@pytest.mark.parametrize("flag, logged", [([], "Attention: sdpa (auto: on cpu"),
                                          (["--attention", "sdpa"], "Attention: sdpa (--attention sdpa)")])
def test_choice_is_logged_and_recorded_in_meta(base, capsys, flag, logged):
    assert base_train.main(FLAGS + flag) == 0
    assert logged in capsys.readouterr().out
    meta = json.loads((base / "base_checkpoints" / "d2" / "meta_000001.json").read_text())
    assert meta["attention"] == "sdpa"
    assert meta["attention_reason"].startswith(logged.split("(", 1)[1].rstrip(")"))


@pytest.mark.parametrize("backend, reason", [("fa3", "--attention fa3: Flash Attention 3 runs in bf16/fp16"),
                                             ("flex", "--attention flex: FlexAttention has no backward on cpu")])
def test_forced_backend_that_cannot_run_here_stops_before_training(base, capsys, backend, reason):
    assert base_train.main(FLAGS + ["--attention", backend]) == 1
    assert reason in capsys.readouterr().err
    assert not (base / "base_checkpoints" / "d2").exists() or not any((base / "base_checkpoints" / "d2").iterdir())

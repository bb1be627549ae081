"""Checkpoint layout, atomic writes, and the errors for missing or mismatched checkpoints."""
import json
import os
import time

import pytest
import torch

from nanochat_core.model.gpt import GPT, GPTConfig
from nanochat_core.model import checkpoint as ckpt

CONFIG = GPTConfig(sequence_len=32, vocab_size=300, n_layer=2, n_head=2, n_kv_head=2, n_embd=64, window_pattern="L")
META_KEYS = {"step", "val_bpb", "model_config", "user_config", "device_batch_size", "max_seq_len",
             "total_batch_size", "dataloader_state_dict", "loop_state"}


def tiny_model(config=CONFIG):
    torch.manual_seed(0)
    model = GPT(config)
    model.init_weights()
    return model


def meta_for(step, config=CONFIG):
    from dataclasses import asdict

    return {"step": step, "val_bpb": 1.5, "model_config": asdict(config), "user_config": {"depth": config.n_layer},
            "device_batch_size": 2, "max_seq_len": config.sequence_len, "total_batch_size": 64,
            "dataloader_state_dict": {"pq_idx": 0, "rg_idx": 0, "epoch": 1},
            "loop_state": {"min_val_bpb": 1.5, "smooth_train_loss": 2.0, "total_training_time": 3.0}}


def save(tmp_path, step, model=None, optim_state=None, meta=None):
    model = model or tiny_model()
    ckpt.save_checkpoint(tmp_path, step, model.state_dict(), optim_state or {"state": {}, "param_groups": []},
                         meta or meta_for(step))
    return model


def test_layout_and_round_trip(tmp_path):
    model = save(tmp_path, 7)
    save(tmp_path, 12)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["meta_000007.json", "meta_000012.json", "model_000007.pt", "model_000012.pt",
                     "optim_000007_rank0.pt", "optim_000012_rank0.pt"]
    meta = json.loads((tmp_path / "meta_000012.json").read_text())
    assert META_KEYS <= set(meta)
    assert set(meta["loop_state"]) == {"min_val_bpb", "smooth_train_loss", "total_training_time"}
    assert ckpt.find_last_step(tmp_path) == 12
    state, optim, meta = ckpt.load_checkpoint(tmp_path, load_optimizer=True)  # latest by default
    assert meta["step"] == 12 and optim == {"state": {}, "param_groups": []}
    state7, _, _ = ckpt.load_checkpoint(tmp_path, 7)
    for k, v in model.state_dict().items():
        assert torch.equal(state7[k], v)
    loaded = ckpt.build_model(state7, meta, "cpu")
    idx = torch.randint(0, 300, (1, 8))
    assert torch.allclose(loaded(idx), model(idx))


def test_compile_prefix_is_stripped(tmp_path):
    model = tiny_model()
    prefixed = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}
    ckpt.save_checkpoint(tmp_path, 1, prefixed, None, meta_for(1))
    state, _, _ = ckpt.load_checkpoint(tmp_path, 1)
    assert set(state) == set(model.state_dict())


def test_no_temporary_files_and_meta_is_written_last(tmp_path, monkeypatch):
    save(tmp_path, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    real = ckpt.save_torch_atomic

    def failing(obj, path):
        if "model_" in str(path):
            raise OSError("disk full")
        real(obj, path)
    monkeypatch.setattr(ckpt, "save_torch_atomic", failing)
    with pytest.raises(OSError):
        save(tmp_path, 4)
    # the interrupted save has no meta: it does not count, and nothing half-written is left
    assert not (tmp_path / "meta_000004.json").exists()
    assert not (tmp_path / "model_000004.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert ckpt.find_last_step(tmp_path) == 3


def test_shape_mismatch_names_file_and_key(tmp_path):
    bigger = GPTConfig(**{**meta_for(0)["model_config"], "n_embd": 128})
    save(tmp_path, 5, model=tiny_model(), meta=meta_for(5, config=bigger))
    with pytest.raises(ValueError) as err:
        ckpt.load_checkpoint(tmp_path, 5)
    msg = str(err.value)
    assert "model_000005.pt" in msg and "transformer.wte.weight" in msg


def test_missing_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        ckpt.load_checkpoint(tmp_path / "d99")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        ckpt.find_last_step(tmp_path / "empty")
    save(tmp_path, 2)
    with pytest.raises(FileNotFoundError, match="meta_000009.json"):
        ckpt.load_checkpoint(tmp_path, 9)
    (tmp_path / "model_000002.pt").unlink()
    with pytest.raises(FileNotFoundError, match="model_000002.pt"):
        ckpt.load_checkpoint(tmp_path, 2)
    with pytest.raises(FileNotFoundError, match="optim_000002_rank1.pt"):
        save(tmp_path, 2)
        ckpt.load_checkpoint(tmp_path, 2, load_optimizer=True, rank=1)


def test_find_largest_model_tag(tmp_path):
    with pytest.raises(FileNotFoundError):
        ckpt.find_largest_model_tag(tmp_path / "nothing")
    for tag in ("d4", "d10", "d2", "custom"):
        (tmp_path / tag).mkdir()
    assert ckpt.find_largest_model_tag(tmp_path) == "d10"
    other = tmp_path / "others"
    for tag in ("alpha", "beta"):
        (other / tag).mkdir(parents=True)
    old = time.time() - 100
    os.utime(other / "alpha", (old, old))
    assert ckpt.find_largest_model_tag(other) == "beta"

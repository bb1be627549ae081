"""Removing an earlier run's checkpoints before a cell trains afresh (the main-job test shows why: its SFT
read an older, longer run's last step)."""
from nanochat_core.model import checkpoint_layout as ckpt


def test_remove_checkpoints_takes_every_step_and_nothing_else(tmp_path):
    folder = tmp_path / "d1_4e9"
    folder.mkdir()
    for step in (100, 200):
        ckpt.meta_path(folder, step).write_text("{}")
        ckpt.model_path(folder, step).write_bytes(b"w")
        for rank in (0, 1):
            ckpt.optim_path(folder, step, rank).write_bytes(b"o")
    (folder / "loss_curve.png").write_bytes(b"p")
    (folder / "model_notes.pt.txt").write_text("a user's file")
    assert ckpt.find_last_step(folder) == 200
    assert ckpt.remove_checkpoints(folder) == 2
    assert sorted(f.name for f in folder.iterdir()) == ["loss_curve.png", "model_notes.pt.txt"]
    assert ckpt.remove_checkpoints(folder) == 0 and ckpt.remove_checkpoints(tmp_path / "absent") == 0

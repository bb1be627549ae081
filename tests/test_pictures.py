"""The loss curve's two halves: the training child saves the points (no matplotlib there), the asset draws them."""
import json

from nanochat_pipeline.pictures import draw_saved_curve, save_curve_points

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_saved_points_are_drawn_where_the_child_said(tmp_path):
    path = tmp_path / "report" / "d2" / "loss_curve.png"
    assert save_curve_points([0, 1, 2], [6.2, float("nan"), 4.1], path, "d2") == path
    assert not path.exists()  # the child only saved the points
    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved["steps"] == [0, 1, 2] and saved["losses"][0] == 6.2 and saved["title"] == "d2"
    assert draw_saved_curve(path) == path and path.read_bytes()[:8] == PNG_SIGNATURE
    assert not list(path.parent.glob("*.tmp"))


def test_a_picture_without_points_is_kept(tmp_path):
    path = tmp_path / "loss_curve.png"
    path.write_bytes(PNG_SIGNATURE + b"drawn by an older child")
    assert draw_saved_curve(path).read_bytes() == PNG_SIGNATURE + b"drawn by an older child"

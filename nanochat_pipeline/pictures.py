"""PNG pictures for asset metadata (Dagster has no image type: a base64 data URI in Markdown)."""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def loss_curve_png(steps: list[int], losses: list[float], path: Path, title: str) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses)
    ax.set(xlabel="step", ylabel="train loss (smoothed)", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def save_curve_points(steps: list[int], losses: list[float], path: Path, title: str) -> Path:
    """What loss_curve_png would draw at `path`, saved as JSON beside it (`path` with .json) for
    draw_saved_curve. A training child saves the points and the asset that launched it draws them:
    matplotlib's import (~0.8 s of CPU) is then paid once per drawing process, not once per child."""
    points = path.with_suffix(".json")
    points.parent.mkdir(parents=True, exist_ok=True)
    tmp = points.with_name(points.name + ".tmp")
    tmp.write_text(json.dumps({"title": title, "steps": steps, "losses": losses}))
    tmp.replace(points)  # a reader never sees half of it
    return path


def draw_saved_curve(path: Path) -> Path:
    """The PNG at `path` from the points save_curve_points left beside it (a PNG already there, drawn by
    an older child, is kept when there are none)."""
    points = path.with_suffix(".json")
    if points.exists():
        saved = json.loads(points.read_text())
        loss_curve_png(saved["steps"], saved["losses"], path, saved["title"])
    return path


def bpb_vs_flops_png(rows: list[dict], path: Path) -> Path:
    """val_bpb against FLOP budget, one line per depth (NaN rows left out)."""
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for depth in sorted({r["depth"] for r in rows}):
        points = sorted((r["flops_budget"], r["val_bpb"]) for r in rows
                        if r["depth"] == depth and r.get("val_bpb") is not None and math.isfinite(r["val_bpb"]))
        if points:
            ax.plot(*zip(*points), marker="o", label=f"d{depth}")
    ax.set_xscale("log")
    ax.set(xlabel="training FLOPs", ylabel="val bpb", title="val bpb vs FLOP budget")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def markdown_image(path: Path, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"

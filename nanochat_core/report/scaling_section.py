"""The report card's scaling section: the sweep's verdict (with its backtest) and its plans, as the
scaling analysis wrote them in fit.json (<root>/scaling_laws_results_<preset>/fit.json, the pipeline's
layout; `verdict` and `plan_lines` are its printed lines). No fit, no section; an unreadable fit is
said, never guessed around. Reads the file only: report does not import scaling (same layer)."""
from __future__ import annotations

import json
from pathlib import Path

FIT_GLOB = "scaling_laws_results_*/fit.json"


def scaling_section(root: Path | None) -> dict | None:
    """{"fit_json", "lines"} from the newest fit.json under root, else None."""
    from nanochat_core.common import settings

    root = Path(root) if root is not None else settings.base_dir()
    fits = sorted(root.glob(FIT_GLOB), key=lambda p: p.stat().st_mtime)
    if not fits:
        return None
    try:
        fit = json.loads(fits[-1].read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return {"fit_json": str(fits[-1]), "lines": [f"fit.json unreadable: {e}"]}
    lines = (fit.get("verdict") or "no verdict recorded").splitlines()
    lines += [" ".join(p.split()) for p in fit.get("plan_lines") or []]
    return {"fit_json": str(fits[-1]), "lines": lines}


def scaling_markdown(section: dict | None) -> list[str]:
    if not section:
        return []
    return (["", "## Scaling law of the sweep", ""] + [f"- {line}" for line in section["lines"]]
            + ["", f"From `{section['fit_json']}`."])

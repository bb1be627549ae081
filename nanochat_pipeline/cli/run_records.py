"""What a finished main-job run left in the instance, read back for the terminal: its materialization's
metadata, its warnings, why it failed, whether it was interrupted, and the scaling verdict."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg

from nanochat_pipeline.staleness import latest_metadata

INTERRUPTED_ERRORS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}


def materialization_metadata(result, asset: str) -> dict:
    for event in result.all_events:
        if event.is_step_materialization and event.asset_key == dg.AssetKey(asset):
            return dict(event.step_materialization_data.materialization.metadata)
    return {}


def run_warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run's own warning lines (context.log.warning: a NaN cell, a skipped evaluation), not
    Dagster's engine events."""
    return [entry.user_message for entry in instance.all_logs(run_id)
            if entry.level == logging.WARNING and entry.dagster_event is None]


def _errors(events):
    for event in events:
        if event.is_step_failure and event.event_specific_data.error:
            error = event.event_specific_data.error
            while error is not None:
                yield error
                error = error.cause


def _interrupted(events) -> bool:
    return any(error.cls_name in INTERRUPTED_ERRORS for error in _errors(events))


def was_interrupted(result) -> bool:
    return _interrupted(result.all_events)


def run_was_interrupted(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """A queued run's was_interrupted: cancelled, or its step ended by an interrupt."""
    if run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING):
        return True
    return _interrupted(entry.dagster_event for entry in instance.all_logs(run.run_id) if entry.dagster_event)


def scaling_verdict(instance: dg.DagsterInstance, default_fit_json: Path) -> str:
    """One line from scaling_results' fit.json: its verdict (and whether it is credible) when the fit
    records one, else the optimal tokens:params ratio, else why there is none."""
    fit_path = latest_metadata(instance, "scaling_results", None).get("fit_json")
    path = Path(getattr(fit_path, "value", fit_path) or default_fit_json)
    try:
        fit = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no fit yet (scaling_results has not run)"
    except (OSError, ValueError) as e:
        return f"fit.json unreadable ({path}: {e})"
    verdict, credible = fit.get("verdict"), fit.get("credible")
    if isinstance(verdict, dict):
        verdict = verdict.get("text") or verdict.get("summary")
    if isinstance(verdict, str) and verdict:
        line = verdict.strip().splitlines()[0]
        judged = {True: " (credible)", False: " (not credible)"}.get(credible, "")
        # the backtest's line (how the law on the smaller budgets predicted the largest), when recorded
        backtest = next((b for b in verdict.splitlines()[1:] if b.startswith("backtest")), None)
        return (line + ("" if "credible" in line.lower() else judged)  # unless the verdict says so itself
                + (f"\n  {backtest}" if backtest else ""))
    ratio = fit.get("optimal_ratio")
    ratio = ratio.get("value") if isinstance(ratio, dict) else ratio
    if isinstance(ratio, (int, float)):
        return f"optimal tokens:params ratio {ratio:.3g} (the fit records no verdict)"
    return f"no optimal ratio: the grid is too thin to fit (see {path})"

"""`python -m nanochat_pipeline status` on a partly materialized grid, read from a real instance: a
trained cell shows the val_bpb its materialization recorded, a never-trained cell "missing", a cell
whose run failed "failed" with the error's own words, a cell with a run in progress "running"; after
the tokenizer changes, the trained cell reads "unsynced", and a tokenizer failing its blocking check
reads "check failed" with the check's words. Nothing is started by looking."""
import os
import re
import subprocess
import sys
import time

import dagster as dg
import pytest

from nanochat_pipeline.cli.failure_line import run_failure_line

from helpers import latest_materialization, materialize, metadata_values, write_tiny_preset

pytestmark = pytest.mark.slow
TRAINED, NEVER, FAILED, RUNNING = "d1|1e9", "d1|2e9", "d2|1e9", "d2|2e9"


def grid_row(output: str, depth: str) -> list[str]:
    """The grid table's row of `depth`, split on runs of two or more spaces."""
    for line in output.splitlines():
        if line.startswith(depth + " "):
            return re.split(r"\s{2,}", line.strip())[1:]
    raise AssertionError(f"no row {depth} in:\n{output}")


def run_status(preset_path, base, home):
    env = os.environ | {"NANOCHAT_BASE_DIR": str(base), "DAGSTER_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env.pop("NANOCHAT_PRESET", None)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nanochat_pipeline", "status", "--preset", str(preset_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def test_status_of_a_partly_materialized_grid(tmp_path, monkeypatch):
    from nanochat_pipeline.instance.home import ensure_dagster_home
    from nanochat_pipeline.presets import load_preset

    base, home = tmp_path / "base", tmp_path / "dagster_home"
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(base))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    preset_path = write_tiny_preset(tmp_path, depths=(1, 2), flops=("1e9", "2e9"))
    from nanochat_pipeline.cli.status import read_status, render
    from nanochat_pipeline.definitions import build_definitions

    preset = load_preset(str(preset_path))
    defs = build_definitions(preset)
    with dg.DagsterInstance.ephemeral() as empty:  # what status shows before anything ran
        assert grid_row(render(read_status(defs, preset, empty)), "d1") == ["missing", "missing"]

    ensure_dagster_home()  # the instance `run` would make: the shipped dagster.yaml
    with dg.DagsterInstance.get() as instance:
        assert materialize(defs, instance, ["raw_corpus", "shuffled_shards", "tokenizer"]).success
        assert materialize(defs, instance, ["base_model"], TRAINED).success
        bpb = metadata_values(latest_materialization(instance, "base_model", TRAINED))["val_bpb"]
        failed = materialize(defs, instance, ["base_model"], FAILED, raise_on_error=False,
                             run_config={"ops": {"base_model": {"config": {"device_type": "abacus"}}}})
        assert not failed.success
        # the main job's line for it: the child's own exception, not "the process exited with 1"
        assert run_failure_line(instance, failed.run_id).startswith(
            "ValueError: --device-type must be cuda, mps, cpu or auto, got 'abacus' (in the training child")
        # a run in progress on another cell: created as a backfill or the schedule creates one (which records
        # that it plans to materialize the cell), then started
        from dagster._core.events import DagsterEvent, DagsterEventType

        job = defs.resolve_job_def("scaling_grid_job")
        key = dg.MultiPartitionKey({"depth": "d2", "flops": "2e9"})
        run = instance.create_run_for_job(job, tags=job.partitions_def.get_tags_for_partition_key(key),
                                          asset_selection=frozenset({dg.AssetKey("base_model")}))
        instance.run_storage.handle_run_event(run.run_id, DagsterEvent(DagsterEventType.RUN_START.value,
                                                                       job_name=run.job_name))
        runs_before = len(instance.get_runs())

    code, out, seconds = run_status(preset_path, base, home)
    assert code == 0, out
    assert grid_row(out, "d1") == [f"{bpb:.4f}", "missing"], out
    assert grid_row(out, "d2") == ["failed", "running"], out
    assert "4 cells: 1 up to date, 1 missing, 1 failed, 1 running" in out, out
    # the failed cell's line is the child's cause, not Dagster's wrapper
    failed_line = next(line for line in out.splitlines() if line.startswith(f"  {FAILED} failed: "))
    assert ("ValueError: --device-type must be cuda, mps, cpu or auto, got 'abacus' (in the training child" in failed_line
            and "DagsterExecutionStepExecutionError" not in out), failed_line
    assert "tokenizer                 up to date   vocab_size 320" in out, out
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == runs_before  # looking started nothing
    print(f"status took {seconds:.1f} s")

    # Another tokenizer (another vocabulary, through the launchpad's config): the trained cell goes unsynced.
    with dg.DagsterInstance.get() as instance:
        assert materialize(defs, instance, ["tokenizer"],
                           run_config={"ops": {"tokenizer": {"config": {"vocab_size": 300}}}}).success
        out = render(read_status(defs, preset, instance))
    assert grid_row(out, "d1")[0] == f"{bpb:.4f} unsynced", out
    assert f"  {TRAINED} unsynced: tokenizer has a new data version" in out, out

    # A byte-level vocabulary fails the tokenizer's blocking check: status says so, with the check's words.
    with dg.DagsterInstance.get() as instance:
        assert not materialize(defs, instance, ["tokenizer"], raise_on_error=False,
                               run_config={"ops": {"tokenizer": {"config": {"vocab_size": 265}}}}).success
        out = render(read_status(defs, preset, instance))
    assert re.search(r"^tokenizer +check failed +vocab_size 265", out, re.MULTILINE), out
    assert "  tokenizer check failed: its last blocking check bytes_per_token_above_floor failed: " in out, out

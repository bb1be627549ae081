"""`python -m nanochat_pipeline run` as users run it (a child process, stdout a pipe), and one tiny
main-job history that several slow tests read instead of each making its own: a one-cell preset with
SFT and evaluation, Ctrl-C once its cell is training, then run again (the cell resumes, the rest runs),
then once more (everything up to date).

conftest.py registers `tiny_main_job` (session scope: imported into two test modules, a fixture would
run once per module). A test that changes the history works on a copy of it (copy_base).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from helpers import chat_sections, write_tiny_preset

TINY_CELL, TINY_TAG = "d1|4e9", "d1_4e9"
# every asset of a preset with chat cells and no [rl] table, as the main job lists them
TINY_ASSETS = ["raw_corpus", "shuffled_shards", "tokenizer", "synthetic_conversations", "eval_bundle", "task_data",
               "base_model", "scaling_results", "sft_model", "eval_report"]
TINY_CHAT = chat_sections(num_iterations=4, eval_every=2, eval_tokens=512, chat_tasks="ARC-Easy", chat_max_problems=2)


def main_job_env(base: Path, dagster_home: Path | None = None) -> dict:
    """The environment of a user who set only NANOCHAT_BASE_DIR (DAGSTER_HOME then defaults to under it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "NANOCHAT_PRESET")}
    env |= {"NANOCHAT_BASE_DIR": str(base), "OMP_NUM_THREADS": "1"}
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return env


def start_main_job(preset, base: Path, dagster_home: Path | None = None,
                   sigint_ignored: bool = False) -> subprocess.Popen:
    """The main job in a session of its own (so a test can Ctrl-C its whole process group), output merged.
    sigint_ignored: started with SIGINT ignored, as `nohup ... &` from a script (or a CI runner) starts it."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen([sys.executable, "-m", "nanochat_pipeline", "run", "--preset", str(preset)],
                            env=main_job_env(base, dagster_home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, preexec_fn=ignore)


def run_main_job(preset, base: Path, dagster_home: Path | None = None, timeout: float = 900) -> tuple[int, str]:
    """(exit code, stdout and stderr) of one main-job run to its end."""
    job = start_main_job(preset, base, dagster_home)
    out, _ = job.communicate(timeout=timeout)
    return job.returncode, out


def interrupt_once_training(job: subprocess.Popen, progress_path: Path, timeout: float = 600) -> tuple[int, str]:
    """SIGINT to the job's process group (what Ctrl-C on a terminal sends) once `progress_path` exists."""
    deadline = time.monotonic() + timeout
    while not progress_path.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGINT)
    out, _ = job.communicate(timeout=300)
    return job.returncode, out


def grid_runs(dagster_home: Path) -> list:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return sorted(instance.get_run_records(dg.RunsFilter(job_name="scaling_grid_job")),
                      key=lambda r: r.create_timestamp)


def overlapped(records) -> bool:
    spans = sorted((r.start_time, r.end_time) for r in records if r.start_time and r.end_time)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


def processes_of(base: Path) -> list[str]:
    """Every process whose command line or environment names this test's base folder (daemon, code server,
    run worker, training child)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(pid) != os.getpid() and (str(base) in cmd or f"NANOCHAT_BASE_DIR={base}\0" in env):
            found.append(f"{pid}: {cmd[:160]}")
    return found


@dataclass
class MainJobRuns:
    preset: Path  # the preset file
    base: Path  # NANOCHAT_BASE_DIR of the runs
    interrupted: tuple[int, str]  # (exit code, output) of the run stopped by Ctrl-C
    resumed: tuple[int, str]  # the next run: the cell resumes, everything else runs
    again: tuple[int, str]  # the run after that: everything up to date

    @property
    def root(self) -> Path:
        return self.base / "pipeline" / "tiny"

    @property
    def dagster_home(self) -> Path:
        return self.base / "pipeline" / "dagster_home"

    def copy_base(self, to: Path) -> Path:
        """A copy of the history (files and Dagster instance) for a test that changes it."""
        shutil.copytree(self.base, to, symlinks=True)
        return to


def make_tiny_main_job(folder: Path) -> MainJobRuns:
    from nanochat_pipeline.children.progress import progress_file

    preset = write_tiny_preset(folder, flops=("4e9",), extra_sections=TINY_CHAT)
    base = folder / "base"
    interrupted = interrupt_once_training(start_main_job(preset, base),
                                          progress_file(base / "pipeline" / "tiny", "base_model", TINY_TAG))
    resumed = run_main_job(preset, base)
    again = run_main_job(preset, base, timeout=300)
    return MainJobRuns(preset, base, interrupted, resumed, again)


@pytest.fixture(scope="session")
def tiny_main_job(tmp_path_factory) -> MainJobRuns:
    return make_tiny_main_job(tmp_path_factory.mktemp("tiny_main_job"))

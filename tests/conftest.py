import os

import pytest

# Session fixtures shared by several test modules live here, once: a fixture imported into two modules
# would run once per module (two Postgres servers, two main-job histories).
from main_job_runs import tiny_main_job  # noqa: F401
from postgres_server import pg, pg_home  # noqa: F401


@pytest.fixture
def tmp_base_dir(tmp_path, monkeypatch):
    """An empty NANOCHAT_BASE_DIR for one test, so tests never touch a user's ~/.cache/nanochat."""
    base = tmp_path / "nanochat_base"
    base.mkdir()
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(base))
    return base


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP threads that
    wait on each other make these tests several times slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- running on several workers (pytest-xdist, `-n 2 --dist loadgroup` in addopts) ----
# Each worker is a process of its own: two workers that each train with two torch threads on this 2-core
# machine would wait on each other. One intra-op thread per worker (and for the children the tests start):
# every model in the suite is tiny, and no test checks a thread count it did not set itself.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

# The longest tests and groups first: xdist hands out work in collection order, so a 7-minute test
# collected last would run alone at the end. Measured (pytest --durations, quiet 2-core machine, seconds).
LONGEST_FIRST = [
    "tests/test_main_job_terminal.py::test_demo_from_nothing_prints_under_80_lines",  # 448
    "tests/test_gpu_acceptance.py",  # 132 (the --smoke run)
    "tests/test_pipeline_ui.py",  # 113 (the backfill)
    "tests/test_chat_rl_pipeline.py",  # 97
    "tiny_main_job",  # the shared history (66) and the tests that read it
    "tests/test_evaluation_loader.py",  # 79 (the README's torchrun example)
    "postgres",  # 77 (test_postgres_workers) and the instance tests
    "tests/test_scaling_ladder_cli.py",  # 64
    "tests/test_main_job_side_by_side.py",  # 53 (two cells, Ctrl-C, the resume)
    "tests/test_base_train.py",  # 62 (the compiled run)
]


def xdist_group_of(item) -> str:
    """The tests that must share a worker: those reading one session-scoped run or server (started once per
    worker otherwise), and each file's tests (its module fixtures build their state once per worker)."""
    if "tiny_main_job" in item.fixturenames:
        return "tiny_main_job"
    if "pg" in item.fixturenames:
        return "postgres"
    if item.nodeid.startswith(LONGEST_FIRST[0]):
        return item.nodeid  # uses nothing shared: on a worker of its own while the rest of its file runs
    return item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the xdist_group marks into node ids
def pytest_collection_modifyitems(config, items):
    """Each test marked with its xdist group; groups sorted longest first (a group's rank is its best
    item's: a file stays in one piece, so its module fixtures are built once)."""
    def rank_of(item):
        for i, key in enumerate(LONGEST_FIRST):
            if xdist_group_of(item) == key or item.nodeid.startswith(key):
                return i
        return len(LONGEST_FIRST) + (0 if item.get_closest_marker("slow") else 1)

    group_rank = {}
    for item in items:
        group = xdist_group_of(item)
        item.add_marker(pytest.mark.xdist_group(group))
        group_rank[group] = min(group_rank.get(group, len(LONGEST_FIRST) + 1), rank_of(item))
    items.sort(key=lambda item: group_rank[xdist_group_of(item)])  # stable: collection order within a rank

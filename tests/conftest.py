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

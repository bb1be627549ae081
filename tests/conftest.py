import pytest


@pytest.fixture
def tmp_base_dir(tmp_path, monkeypatch):
    """An empty NANOCHAT_BASE_DIR for one test, so tests never touch a user's ~/.cache/nanochat."""
    base = tmp_path / "nanochat_base"
    base.mkdir()
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(base))
    return base

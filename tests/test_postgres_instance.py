"""The shipped Postgres instance (deploy/postgres/dagster.yaml) against a real PostgreSQL server: the
main job records its runs there and skips on a second run; DAGSTER_HOME's own dagster.yaml is used as
it is and named; bad instance settings fail before anything is written."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nanochat_pipeline.cli.parser import main
from nanochat_pipeline.instance.home import SHIPPED_DAGSTER_YAML, prepare_dagster_home
from nanochat_pipeline.instance.storage import InstanceConfigError
from helpers import chat_sections, free_port, write_tiny_preset
from postgres_server import PG_YAML

REPO = Path(__file__).resolve().parents[1]


def run_command(preset_path):
    return subprocess.run([sys.executable, "-m", "nanochat_pipeline", "run", "--preset", str(preset_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)


MAIN_JOB_SECTIONS = chat_sections()  # two SFT steps, one GSM8K problem, offline


@pytest.mark.slow
def test_main_job_records_its_runs_in_postgres_and_a_second_run_skips(pg, pg_home, tmp_path):
    home, db = pg_home
    preset = write_tiny_preset(tmp_path, flops=("2e9",), extra_sections=MAIN_JOB_SECTIONS)
    first = run_command(preset)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"instance: PostgreSQL {db} at 127.0.0.1:{pg.port}" in first.stdout
    # DAGSTER_HOME's own file was used as it is, and no SQLite history was made beside it.
    assert (home / "dagster.yaml").read_bytes() == PG_YAML.read_bytes()
    assert not list(home.rglob("*.db"))
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM runs GROUP BY status")
        statuses = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        materializations = cur.fetchone()[0]
    # raw_corpus, shuffled_shards, tokenizer, synthetic_conversations, eval_bundle, task_data,
    # base_model[d1|2e9], scaling_results, sft_model[d1|2e9], eval_report[d1|2e9]: one run each
    assert statuses == {"SUCCESS": 10}, statuses
    assert materializations == 10

    second = run_command(preset)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"instance: PostgreSQL {db}" in second.stdout
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs")
        assert cur.fetchone()[0] == 10  # the second run added no run


def test_unreachable_postgres_fails_in_seconds_naming_host_and_port(pg_home, tmp_path, monkeypatch, capsys,
                                                                    tmp_base_dir):
    home, _ = pg_home
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DAGSTER_PG_PORT", str(port))
    preset = write_tiny_preset(tmp_path)
    started = time.monotonic()
    assert main(["run", "--preset", str(preset)]) == 2
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in err and str(home / "dagster.yaml") in err
    assert sorted(p.name for p in home.iterdir()) == ["dagster.yaml"]  # nothing written
    assert not (tmp_base_dir / "pipeline").exists()


def test_dev_refuses_an_unreachable_postgres_before_starting_dagster(pg_home, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_PG_PORT", str(free_port()))
    assert main(["dev"]) == 2  # returned: `dagster dev` was never exec'd
    assert "cannot reach PostgreSQL at 127.0.0.1:" in capsys.readouterr().err


def test_wrong_password_is_refused_before_anything_is_written(pg_home, tmp_path, monkeypatch, capsys, tmp_base_dir):
    home, _ = pg_home
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "not-the-password")
    assert main(["run", "--preset", str(write_tiny_preset(tmp_path))]) == 2
    assert "password authentication failed" in capsys.readouterr().err
    assert not (tmp_base_dir / "pipeline").exists()


def test_storage_the_install_lacks_is_named(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(
        {"storage": {"mysql": {"mysql_db": {"username": "u", "password": "p", "hostname": "h", "db_name": "d"}}}}))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with pytest.raises(InstanceConfigError, match=r"storage\.mysql needs the Python module dagster_mysql.*"
                                                  r"pip install dagster-mysql"):
        prepare_dagster_home()
    (home / "dagster.yaml").write_text(yaml.safe_dump(
        {"run_launcher": {"module": "dagster_celery_k8s.launcher", "class": "CeleryK8sRunLauncher"}}))
    with pytest.raises(InstanceConfigError, match="run_launcher needs the Python module dagster_celery_k8s"):
        prepare_dagster_home()


def test_unset_variable_and_bad_slot_count_are_named(pg_home, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(InstanceConfigError, match=r"hostname reads \$DAGSTER_PG_HOST, which is not set"):
        prepare_dagster_home()
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("NANOCHAT_TRAINING_SLOTS", "0")
    with pytest.raises(InstanceConfigError, match="NANOCHAT_TRAINING_SLOTS='0': must be a whole number of at least 1"):
        prepare_dagster_home()


def test_postgres_home_is_named_and_an_empty_home_gets_the_shipped_sqlite_file(pg, pg_home, tmp_path, monkeypatch):
    home, db = pg_home
    assert prepare_dagster_home() == (home, f"PostgreSQL {db} at 127.0.0.1:{pg.port} (user nanochat; {home}/dagster.yaml)")
    empty = tmp_path / "fresh_home"
    monkeypatch.setenv("DAGSTER_HOME", str(empty))
    assert prepare_dagster_home() == (empty, f"SQLite files under {empty}")
    assert (empty / "dagster.yaml").read_bytes() == SHIPPED_DAGSTER_YAML.read_bytes()


def test_training_pool_limit_comes_from_the_environment_else_stays_as_set(pg_home, monkeypatch):
    import dagster as dg

    from nanochat_pipeline.instance.home import ensure_training_pool

    monkeypatch.delenv("NANOCHAT_TRAINING_SLOTS", raising=False)
    prepare_dagster_home()
    with dg.DagsterInstance.get() as instance:
        assert ensure_training_pool(instance) == 1  # a fresh instance: one cell at a time
        instance.event_log_storage.set_concurrency_slots("training", 4)  # `dagster instance concurrency set training 4`
        assert ensure_training_pool(instance) == 4  # kept when the variable is unset
        monkeypatch.setenv("NANOCHAT_TRAINING_SLOTS", "2")
        assert ensure_training_pool(instance) == 2
        assert instance.event_log_storage.get_concurrency_info("training").slot_count == 2

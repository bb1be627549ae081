"""Which storage a DAGSTER_HOME's dagster.yaml names, and whether this install can use it, checked
before anything is written: a missing package is named, an unreachable PostgreSQL fails in seconds
with its host and port (Dagster itself would retry, then fail deep inside SQLAlchemy)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import yaml

PG_PORT_ENV, PG_DEFAULT_PORT = "DAGSTER_PG_PORT", "5432"
# The storage shorthands dagster.yaml accepts and the package each needs (sqlite is built in).
STORAGE_MODULES = {"postgres": "dagster_postgres", "mysql": "dagster_mysql", "sqlite": None}
# Sections of dagster.yaml that name a class by its module.
CLASS_SECTIONS = ("run_storage", "event_log_storage", "schedule_storage", "run_coordinator", "run_launcher",
                  "compute_logs", "scheduler", "local_artifact_storage")
CONNECT_TIMEOUT_S = 5


class InstanceConfigError(RuntimeError):
    """DAGSTER_HOME's dagster.yaml cannot be used here; the message names the file and what is wrong."""


def read_instance_config(home: Path) -> dict:
    path = home / "dagster.yaml"
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InstanceConfigError(f"{path}: not valid YAML: {e}") from None


def pip_name(module: str) -> str:
    return module.split(".")[0].replace("_", "-")


def missing_modules(config: dict) -> list[tuple[str, str]]:
    """(where in dagster.yaml, module) for each module the file names that this install lacks."""
    named = [(f"storage.{kind}", STORAGE_MODULES.get(kind, f"dagster_{kind}"))
             for kind in (config.get("storage") or {})]
    named += [(section, (config.get(section) or {}).get("module")) for section in CLASS_SECTIONS]
    return [(where, module) for where, module in named
            if module and importlib.util.find_spec(module.split(".")[0]) is None]


def _resolve(value, where: str, path: Path) -> str:
    """A dagster.yaml scalar: a literal, or {env: NAME} read from the environment."""
    if isinstance(value, dict) and "env" in value:
        name = value["env"]
        if not os.environ.get(name):
            raise InstanceConfigError(f"{path}: {where} reads ${name}, which is not set")
        return os.environ[name]
    return str(value)


def postgres_settings(config: dict, path: Path) -> dict | None:
    """host, port, user, password, db of a `storage: postgres: postgres_db:` instance, else None."""
    db = ((config.get("storage") or {}).get("postgres") or {}).get("postgres_db")
    if db is None:
        return None
    keys = {"host": "hostname", "port": "port", "user": "username", "password": "password", "db": "db_name"}
    settings = {ours: _resolve(db[theirs], f"storage.postgres.postgres_db.{theirs}", path)
                for ours, theirs in keys.items() if theirs in db}
    settings.setdefault("port", PG_DEFAULT_PORT)
    return settings


def describe_storage(home: Path, config: dict) -> str:
    storage = config.get("storage") or {}
    pg = postgres_settings(config, home / "dagster.yaml")
    if pg is not None:
        return f"PostgreSQL {pg['db']} at {pg['host']}:{pg['port']} (user {pg['user']}; {home}/dagster.yaml)"
    if "postgres" in storage:
        return f"PostgreSQL (postgres_url; {home}/dagster.yaml)"
    if storage and "sqlite" not in storage:
        return f"{', '.join(storage)} storage ({home}/dagster.yaml)"
    if any((config.get(s) or {}).get("module") for s in ("run_storage", "event_log_storage")):
        return f"custom storage classes ({home}/dagster.yaml)"
    return f"SQLite files under {home}"


def check_postgres_reachable(pg: dict, path: Path) -> None:
    import psycopg2  # dagster-postgres brings it; checked by missing_modules first

    try:
        psycopg2.connect(host=pg["host"], port=int(pg["port"]), user=pg.get("user"), password=pg.get("password", ""),
                         dbname=pg.get("db"), connect_timeout=CONNECT_TIMEOUT_S).close()
    except psycopg2.OperationalError as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InstanceConfigError(f"cannot reach PostgreSQL at {pg['host']}:{pg['port']} (database {pg.get('db')}, "
                                  f"user {pg.get('user')}; named by {path}): {reason}") from None


def preflight(home: Path) -> str:
    """Check DAGSTER_HOME's dagster.yaml against this install and its database; return what storage it
    is on. Reads only: nothing is written, so a failure here leaves no half-made history."""
    os.environ.setdefault(PG_PORT_ENV, PG_DEFAULT_PORT)  # the shipped Postgres file reads it
    path = home / "dagster.yaml"
    config = read_instance_config(home)
    missing = missing_modules(config)
    if missing:
        where, module = missing[0]
        raise InstanceConfigError(
            f"{path}: {where} needs the Python module {module}, which this install lacks: "
            f"pip install {pip_name(module)} (the dagster release's integration version, e.g. "
            f"pip install -e '.[cluster]' for dagster-postgres and dagster-k8s)")
    pg = postgres_settings(config, path)
    if pg is not None:
        check_postgres_reachable(pg, path)
    return describe_storage(home, config)

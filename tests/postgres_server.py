"""A real PostgreSQL server for tests (Debian's `postgresql` package), on 127.0.0.1 and a free port.

initdb and pg_ctl refuse to run as root, so under root (CI) they run as the `postgres` user through
runuser, in a temp dir that user owns (pytest's tmp_path is not reachable by other users).
Password authentication is on, so the DAGSTER_PG_PASSWORD that dagster.yaml reads is really used.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port

PG_YAML = Path(__file__).resolve().parents[1] / "deploy" / "postgres" / "dagster.yaml"

USER, PASSWORD = "nanochat", "pipes-and-pools"


def postgres_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    host: str = "127.0.0.1"

    def _as_owner(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def start(self) -> None:
        data, sockets = self.root / "data", self.root / "sockets"
        sockets.mkdir()
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.root, sockets, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        subprocess.run(self._as_owner(str(self.bin_dir / "initdb"), "-D", str(data), "-U", USER,
                                      f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"),
                       check=True, capture_output=True, text=True)
        options = f"-c listen_addresses={self.host} -p {self.port} -k {sockets} -c fsync=off"
        subprocess.run(self._as_owner(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                                      "-l", str(self.root / "server.log"), "-w", "-t", "60", "start"),
                       check=True, capture_output=True, text=True)

    def stop(self) -> None:
        subprocess.run(self._as_owner(str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                                      "-w", "stop"), capture_output=True, text=True)

    def connect(self, db: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=USER, password=PASSWORD, dbname=db)

    def create_database(self, name: str) -> None:
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()

    def env(self, db: str) -> dict:
        """The environment deploy/postgres/dagster.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": USER,
                "DAGSTER_PG_PASSWORD": PASSWORD, "DAGSTER_PG_DB": db}


def start_server() -> PostgresServer | None:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        return None
    server = PostgresServer(bin_dir, Path(tempfile.mkdtemp(prefix="nanochat-pg-")), free_port())
    try:
        server.start()
    except subprocess.CalledProcessError as e:
        shutil.rmtree(server.root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {e.stderr or e.stdout}") from None
    return server


@pytest.fixture(scope="session")
def pg():
    """One server for the session; each test gets a database of its own (pg_home)."""
    server = start_server()
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (apt-get install -y postgresql): CI must run these tests")
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def pg_home(pg, tmp_path, tmp_base_dir, monkeypatch, request):
    """A DAGSTER_HOME holding deploy/postgres/dagster.yaml, on a database of its own."""
    db = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    pg.create_database(db)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PG_YAML, home / "dagster.yaml")
    for key, value in {**pg.env(db), "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(key, value)
    return home, db

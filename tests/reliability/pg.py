"""A private Postgres for the database-restart case (never the shared server on 5432): the
machine's PostgreSQL binaries, a data directory in /tmp, a free port, trust auth for the
connecting role. Postgres refuses to run as root, so as root it runs as `postgres`."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no PostgreSQL {name} binary under /usr/lib/postgresql")
    return found[-1]


class PrivatePostgres:
    def __init__(self, port: int, role: str = "root"):
        self.port, self.role = port, role
        self.dir = Path(tempfile.mkdtemp(prefix="oms-faults-pg-"))
        self.data = self.dir / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.dir.chmod(0o755)
        subprocess.run(
            [
                *self.as_user,
                _bin("initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                self.role,
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        self.proc: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"postgresql://{self.role}@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *self.as_user,
                _bin("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=open(self.dir / "log", "a") if not self.as_user else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("the private postgres did not start in 30 s")

    def crash(self) -> None:
        """Immediate shutdown: no checkpoint, crash recovery on the next start."""
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate"],
            check=True,
            capture_output=True,
        )
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(
                [*self.as_user, _bin("pg_ctl"), "-D", str(self.data), "stop", "-m", "fast"],
                capture_output=True,
            )
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def clone(self, source_url: str, name: str) -> None:
        """A copy of the (migrated) test database: faster than migrating from scratch."""
        subprocess.run(
            [_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.role, name],
            check=True,
            capture_output=True,
        )
        dump = subprocess.run(
            [_bin("pg_dump"), "--no-owner", "--no-privileges", source_url],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [_bin("psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url(name)],
            input=dump.stdout,
            check=True,
            capture_output=True,
        )

"""Helpers for the restart cases: a private redis-server, a Daphne subprocess, and a blotter
client that follows static/js/blotter/feed.js (a snapshot at the first subscription, sequence
numbers within an epoch, a reconnect that resumes from its last number and snapshots only on
"resync" or another epoch, a gap that a short wait does not fill asks for a replay, then a
snapshot)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

from tests.conftest import ROOT

GAP_WAIT = 0.3


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process on port {port} exited during start-up") from None
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port} within {timeout} s")


class RedisServer:
    """A throwaway redis-server (no persistence: a restart loses every key, as a crash of a
    cache node would)."""

    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir = port, workdir
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class DaphneServer:
    def __init__(self, port: int, env: dict, log: Path):
        self.port, self.env, self.log = port, env, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oms.web",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "a"),
            stderr=subprocess.STDOUT,
        )
        wait_port(self.port, self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class BlotterClient(threading.Thread):
    """One open blotter: `rows` is what its grid would show."""

    def __init__(self, base: str, cookie: str, scope: str = "blotter"):
        super().__init__(daemon=True)
        self.base, self.cookie, self.scope = base, cookie, scope
        self.rows: dict[int, dict] = {}
        self.seq: int | None = None
        self.epoch = ""
        self.pending: dict[int, dict] = {}
        self.gap_since: float | None = None
        self.gap_asked = False
        self.snapshots = self.reconnects = self.messages = self.resumes = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def _snapshot(self) -> bool:
        req = urllib.request.Request(
            f"{self.base}/api/blotter/snapshot/?scope={self.scope}",
            headers={"Cookie": self.cookie},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.load(resp)
        except OSError:
            return False
        with self.lock:
            self.rows = {r["id"]: r for r in body["rows"]}
            self.seq, self.epoch = body["seq"], body.get("epoch", "")
            self.snapshots += 1
            self.gap_asked = False
            self._drain()
        return True

    def _foreign(self, msg: dict) -> bool:
        return bool(self.epoch and msg.get("epoch") and msg["epoch"] != self.epoch)

    def _receive(self, msg: dict) -> bool:
        """Apply or hold the message; False when it is of another epoch (take a snapshot)."""
        with self.lock:
            self.messages += 1
            if self.seq is not None and self._foreign(msg):
                self.pending = {msg["seq"]: msg}
                return False
            if self.seq is not None and msg["seq"] <= self.seq:
                return True
            self.pending[msg["seq"]] = msg
            if self.seq is not None:
                self._drain()
            return True

    def _drain(self) -> None:
        for key in [k for k, m in self.pending.items() if k <= self.seq or self._foreign(m)]:
            del self.pending[key]
        while self.seq + 1 in self.pending:
            msg = self.pending.pop(self.seq + 1)
            self.seq = msg["seq"]
            self.epoch = msg.get("epoch") or self.epoch
            for row in msg["rows"]:
                self.rows[row["id"]] = row
        if self.pending and self.gap_since is None:
            self.gap_since = time.monotonic()
        elif not self.pending:
            self.gap_since, self.gap_asked = None, False

    def run(self) -> None:
        from websockets.sync.client import connect

        ws_url = (
            self.base.replace("http://", "ws://")
            + f"/ws/{'blotter' if self.scope == 'blotter' else 'orders/mine'}/"
        )
        backoff = 0.25
        while not self.stop.is_set():
            with self.lock:
                resuming = self.seq is not None
                query = f"?since={self.seq}&epoch={self.epoch}" if resuming else ""
                self.gap_since, self.gap_asked = None, False
                self.pending.clear()
            try:
                with connect(
                    ws_url + query,
                    additional_headers={"Cookie": self.cookie, "Origin": self.base},
                    open_timeout=5,
                ) as ws:
                    while not self.stop.is_set():
                        try:
                            raw = ws.recv(timeout=0.1)
                        except TimeoutError:
                            raw = None
                        snapshot = False
                        if raw is not None:
                            msg = json.loads(raw)
                            if msg.get("type") == "subscribed":
                                backoff = 0.25
                                snapshot = not resuming
                                self.resumes += resuming
                            elif msg.get("type") == "resync":
                                snapshot = True
                            elif msg.get("type") == "orders":
                                snapshot = not self._receive(msg)
                        waited = self.gap_since and time.monotonic() - self.gap_since
                        if waited and waited > GAP_WAIT and not self.gap_asked:
                            self.gap_asked = True
                            ws.send(
                                json.dumps(
                                    {"type": "resume", "since": self.seq, "epoch": self.epoch}
                                )
                            )
                        elif waited and waited > GAP_WAIT * 4:
                            snapshot = True
                        if snapshot:
                            self.gap_since = None
                            while not self._snapshot() and not self.stop.is_set():
                                time.sleep(1)
            except Exception:  # noqa: BLE001 (closed or refused: reconnect, as the page does)
                pass
            if self.stop.is_set():
                return
            self.reconnects += 1
            time.sleep(backoff)
            backoff = min(backoff * 2, 5)

    def view(self) -> dict[int, tuple]:
        with self.lock:
            return {
                k: (r["version"], r["status"], Decimal(str(r["cum_qty"])))
                for k, r in self.rows.items()
            }

"""The server under test: a real `wcms server` process, its database and its numbers."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

ADMIN_PASSWORD = "fleet-benchmark-password"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def _raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Database:
    """SQLite in the data dir, or a throwaway PostgreSQL database dropped afterwards."""

    def __init__(self, kind: str, data_dir: Path) -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.pg_name = f"wcms_bench_{uuid.uuid4().hex[:10]}" if kind == "postgresql" else None

    @property
    def url(self) -> str | None:
        if self.pg_name is None:
            return None
        return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.pg_name}"

    def create(self) -> None:
        if self.pg_name is not None:
            asyncio.run(_pg(PG_ADMIN_URL, f'CREATE DATABASE "{self.pg_name}"'))

    def drop(self) -> None:
        if self.pg_name is not None:
            asyncio.run(_pg(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))

    def count(self, table: str) -> int:
        query = f"SELECT count(*) FROM {table}"
        if self.pg_name is None:
            with sqlite3.connect(self.data_dir / "wcms.db", timeout=30) as conn:
                return int(conn.execute(query).fetchone()[0])
        dsn = f"postgresql://postgres@127.0.0.1:5432/{self.pg_name}"
        return int(asyncio.run(_pg(dsn, query, fetch=True)))


async def _pg(dsn: str, statement: str, *, fetch: bool = False) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        if fetch:
            return await conn.fetchval(statement)
        return await conn.execute(statement)
    finally:
        await conn.close()


class ServerUnderTest:
    """Starts, restarts and measures one `wcms server` process."""

    def __init__(self, work: Path, database: Database, port: int) -> None:
        self.work = work
        self.database = database
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work / "server.log"
        self.api_key: str | None = None
        self._api: httpx.Client | None = None

    @property
    def location(self) -> list[str]:
        url = self.database.url
        return ["--data-dir", str(self.work / "data")] + (["--database-url", url] if url else [])

    def start(self) -> float:
        """Start the server; returns the seconds until /healthz answered."""
        started = time.monotonic()
        if _answers(self.port):
            # Its /healthz would pass for ours and its figures would be taken for ours.
            raise RuntimeError(f"port {self.port} is taken by another process; pass --port")
        env = {**os.environ, "WCMS_ADMIN_PASSWORD": ADMIN_PASSWORD}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "wcms",
                    "server",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    *self.location,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_raise_file_limit,
            )
        while not self._healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log_path}")
            if time.monotonic() - started > 60:
                raise TimeoutError("server did not become healthy in 60 s")
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self, *, timeout: float = 30) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "wcms", *args, *self.location],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    @property
    def api(self) -> httpx.Client:
        if self._api is None:
            self.api_key = self.cli("api-key", "--name", "fleet-benchmark")
            self._api = httpx.Client(
                base_url=self.url,
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=120,
            )
        return self._api

    def metrics(self) -> dict[str, float]:
        text = httpx.get(self.url + "/metrics", timeout=10).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            match = _METRIC_LINE.match(line)
            if match and not line.startswith("#"):
                values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        return values

    def connected(self) -> int:
        """Agents connected now; 0 while a storm keeps the server from answering."""
        try:
            return int(self.metrics().get("wcms_agents_connected", 0))
        except httpx.TransportError:
            return 0

    @property
    def process(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)


def _answers(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0

"""Real WCMS server and agent processes for tests, and a small admin API client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port below the ephemeral range, so agents' own ports never collide."""
    for _ in range(200):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last!r}")


def pid_in(path: Path) -> int | None:
    """The process id a command wrote to ``path``, once it has written it whole."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") and text.strip().isdigit() else None


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited: no such process, or a zombie nobody reaped yet."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wcms(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real `wcms` CLI."""
    result = subprocess.run(
        [sys.executable, "-m", "wcms", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"wcms {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return result


class ServerProc:
    """A `wcms server` process on its own port and data directory."""

    def __init__(
        self, data_dir: Path, database_url: str | None, *, bind: str = "127.0.0.1", **settings: Any
    ) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        # The address to listen on (fault tests use the host end of a veth pair).
        self.bind = bind
        self.port = free_port(bind)
        self.url = f"http://{bind}:{self.port}"
        self.settings = {"heartbeat_interval": 1, "offline_grace": 1.5, **settings}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"
        self._key: str | None = None

    def db_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def start(self) -> ServerProc:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "WCMS_ADMIN_PASSWORD": "admin-password-1"}
        env |= {f"WCMS_{k.upper()}": str(v) for k, v in self.settings.items()}
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wcms", "server", "--port", str(self.port), *self.db_args()]
            + (["--host", self.bind] if self.bind != "127.0.0.1" else []),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for(self._healthy, timeout=30, what=f"server on {self.url}")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def connected(self) -> int:
        """Agents connected right now, from the server's /metrics."""
        for line in httpx.get(self.url + "/metrics", timeout=5).text.splitlines():
            if line.startswith("wcms_agents_connected "):
                return int(float(line.split()[1]))
        return -1

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return wcms(*args, *self.db_args(), check=check)

    def token(self, *, uses: int = 10, ttl: str = "1h") -> str:
        return (
            self.cli("enroll-token", "--uses", str(uses), "--ttl", ttl)
            .stdout.strip()
            .splitlines()[-1]
        )

    def enrol(self, machine_id: str) -> str:
        """Enrol ``machine_id`` as an agent would; returns its credential."""
        answer = httpx.post(
            self.url + "/api/client/register",
            json={
                "enrollment_token": self.token(uses=1),
                "machine_id": machine_id,
                "inventory": {"hostname": machine_id},
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["credential"])

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = self.cli("api-key", "--name", "tests").stdout.strip().splitlines()[-1]
        return self._key

    def api(self) -> Api:
        return Api(self.url, self.key)

    def remote(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a remote CLI command (WCMS_URL / WCMS_API_KEY) against this server."""
        return wcms(*args, env={"WCMS_URL": self.url, "WCMS_API_KEY": self.key}, check=check)


class Api:
    """The admin API, as the CLI and scripts see it."""

    def __init__(self, url: str, key: str) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any = None, *, status: int = 200) -> Any:
        response = self.client.post(path, json=body)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def machine(self, machine_id: str) -> dict[str, Any]:
        return self.get(f"/api/machines/{machine_id}")  # type: ignore[no-any-return]

    def status_of(self, machine_id: str) -> str:
        response = self.client.get(f"/api/machines/{machine_id}")
        return response.json()["status"] if response.status_code == 200 else "missing"

    def command(
        self, selector: str, command_type: str = "execute", **fields: Any
    ) -> dict[str, Any]:
        body = {"selector": selector, "type": command_type, **fields}
        return self.post("/api/commands", body, status=201)  # type: ignore[no-any-return]

    def exec(self, selector: str, command: str, **fields: Any) -> dict[str, Any]:
        return self.command(selector, "execute", payload={"command": command}, **fields)

    def wait(self, command_id: int, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            out = self.get(f"/api/commands/{command_id}", params={"wait": 5, "events": True})
            if out["done"] or time.monotonic() > deadline:
                return out  # type: ignore[no-any-return]


class AgentProc:
    """A `wcms agent` process with its own state directory and machine id."""

    def __init__(
        self,
        server: ServerProc,
        state_dir: Path,
        machine_id: str,
        *,
        token: str | None = None,
        transport: str = "ws",
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        self.server = server
        # Run the agent under this command (``ip netns exec NAME``), if any.
        self.prefix = prefix or []
        self.env = env or {}
        self.state_dir = state_dir
        self.machine_id = machine_id
        self.token = token
        self.transport = transport
        self.extra = extra or []
        self.power_log = state_dir / "power.jsonl"
        self.log_path = state_dir.parent / f"{state_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProc:
        args = [
            *self.prefix,
            sys.executable,
            "-m",
            "wcms",
            "agent",
            "--server",
            self.server.url,
            "--state-dir",
            str(self.state_dir),
            "--machine-id",
            self.machine_id,
            "--transport",
            self.transport,
            "--power-backend",
            f"record:{self.power_log}",
            "--log-level",
            "debug",
            *self.extra,
        ]
        if self.token:
            args += ["--token", self.token]
        env = {**os.environ, "WCMS_AGENT_BACKOFF_MAX": "1", "WCMS_AGENT_BACKOFF_INITIAL": "0.2"}
        env |= self.env
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, *, kill: bool = False, timeout: float = 10) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def wait_exit(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def power_actions(self) -> list[dict[str, Any]]:
        if not self.power_log.exists():
            return []
        return [json.loads(line) for line in self.power_log.read_text().splitlines() if line]

"""The disk under the database fills up (a 20 MiB tmpfs, filled for real): the API
answers clean 503s, `/readyz` fails, nothing acknowledged is lost, a machine whose
agent died meanwhile goes offline once space returns, and the database is intact."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.procs import ServerProc, wait_for


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the full-disk test needs root to mount a tmpfs")
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, *, leave: int) -> Path:
    """Write zeros until only ``leave`` bytes are free; returns the file to delete."""
    ballast = disk / "ballast"
    chunk = b"\0" * (64 * 1024)
    with open(ballast, "wb") as out, contextlib.suppress(OSError):
        for _ in range(1000):  # 64 MiB at most: more than the disk holds
            if shutil.disk_usage(disk).free < leave + len(chunk):
                break
            out.write(chunk)
            out.flush()
    return ballast


def test_a_full_disk_is_a_clean_503_and_nothing_is_lost(tmp_path, small_disk, spawn_on):
    url = f"sqlite+aiosqlite:///{small_disk / 'wcms.db'}"
    server = ServerProc(tmp_path / "server", url, heartbeat_interval=0.5).start()
    try:
        api = server.api()
        agent = spawn_on(server, "disk-1")
        wait_for(lambda: api.status_of("disk-1") == "online", what="the agent online")
        before = api.exec("disk-1", "echo before")
        assert api.wait(before["id"])["runs"][0]["state"] == "succeeded"

        marker = tmp_path / "ran"
        # Room for a few more writes, which then run out of it.
        ballast = fill(small_disk, leave=512 * 1024)
        accepted: dict[int, str] = {}  # command id -> its marker line
        answers: list[httpx.Response] = []

        def refused() -> bool:
            # Writes keep coming (heartbeats, and these commands) until one needs room.
            line = f"run-{len(answers)}"
            answer = api.client.post(
                "/api/commands",
                json={
                    "selector": "disk-1",
                    "type": "execute",
                    "payload": {"command": f"echo {line} >> {marker}"},
                },
            )
            answers.append(answer)
            if answer.status_code == 201:
                accepted[answer.json()["id"]] = line
            return answer.status_code == 503

        wait_for(refused, timeout=60, interval=0.2, what="a write refused for lack of space")
        for answer in answers:
            assert answer.status_code in (201, 503), answer.text
            assert "Traceback" not in answer.text
        assert answers[-1].json()["error"]["code"] == "storage_unavailable"
        wait_for(
            lambda: httpx.get(server.url + "/readyz").status_code == 503,
            what="readyz failing while writes fail",
        )
        assert httpx.get(server.url + "/healthz").status_code == 200
        agent.stop(kill=True)  # its machine should go offline; that write fails for now
        # The scenario: its offline grace ends while the disk is still full.
        time.sleep(float(server.settings["offline_grace"]) + 2)

        ballast.unlink()
        wait_for(
            lambda: httpx.get(server.url + "/readyz").status_code == 200,
            timeout=30,
            what="ready again once space returns",
        )
        wait_for(
            lambda: api.status_of("disk-1") == "offline",
            timeout=30,
            what="the dead agent's machine offline once space returns",
        )
        stored = {c["id"] for c in api.get("/api/commands", params={"limit": 500})}
        assert set(accepted) <= stored  # every 201 was kept
        # The agent comes back: what it ran is reported from its journal, what it never
        # got is delivered now. Every accepted command ran exactly once.
        agent.start()
        states = {command_id: api.wait(command_id)["runs"][0]["state"] for command_id in accepted}
        lines = marker.read_text().splitlines() if marker.exists() else []
        ran = {line: lines.count(line) for line in accepted.values()}
        print(
            f"full disk: sent {len(accepted)}, ran once {sum(n == 1 for n in ran.values())}, "
            f"twice {sum(n > 1 for n in ran.values())}, never {sum(n == 0 for n in ran.values())}"
        )
        assert all(n == 1 for n in ran.values()), ran
        assert set(states.values()) == {"succeeded"}, states
        assert "Traceback" not in server.log()
    finally:
        server.stop()
    with contextlib.closing(sqlite3.connect(small_disk / "wcms.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

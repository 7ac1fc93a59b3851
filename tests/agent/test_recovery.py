"""After the agent dies mid-run: the command dies with it, and the next start kills what
is left, then reports the run failed and interrupted, saying what it found."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from wcms.agent.actions import RecordingPowerBackend, default_actions
from wcms.agent.journal import Journal
from wcms.agent.outbox import Outbox
from wcms.agent.platform import Platform, current_platform
from wcms.agent.platform.linux import LinuxPlatform
from wcms.agent.platform.windows import WindowsPlatform
from wcms.agent.runner import RunManager
from wcms.protocol import RunState, RunUpdate

from .harness import Harness, is_gone, make_envelope, wait_until_gone

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sessions() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts in their own session; killed, group and all, at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_session(
    sessions: list[subprocess.Popen[bytes]], command: str
) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``sh -c command`` as the leader of a new session, as the agent does."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command], start_new_session=True, stdout=subprocess.PIPE
    )
    sessions.append(proc)
    return proc, psutil.Process(proc.pid).create_time()


def journal_started(path: Path, run_id: int, *, pgid: int, started: float) -> None:
    """What the agent journals of a run before it is killed: started, and its process."""
    journal = Journal(path)
    journal.start(make_envelope("sleep 30", run_id=run_id))
    journal.record_process(run_id, 1, pgid=pgid, started=started)
    journal.close()


def recover(path: Path, power_log: Path, *, platform: Platform | None = None) -> RunUpdate:
    """A new agent process on the same journal: recover, and its one report."""
    journal = Journal(path)
    try:
        outbox = Outbox(journal)
        power = RecordingPowerBackend(power_log, machine_id="test-machine")
        actions = default_actions(current_platform(), max_output_bytes=1024, power=power)
        RunManager(journal, outbox, actions=actions, platform=platform).recover()
        [update] = outbox.pending()
        assert journal.unfinished() == []
    finally:
        journal.close()
    return update


def interrupted_error(update: RunUpdate) -> str:
    assert update.state is RunState.FAILED
    assert update.result is not None and update.result.interrupted
    assert update.result.error is not None
    return update.result.error


def children_of(pid: int, count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 5
    while len(children := psutil.Process(pid).children()) < count:
        assert time.monotonic() < deadline, f"{pid} did not start {count} children"
        time.sleep(0.01)
    return children


def test_recovery_kills_the_process_group_a_dead_agent_left(
    tmp_path: Path, power_log: Path, sessions: list[subprocess.Popen[bytes]]
) -> None:
    shell, started = start_session(sessions, "sleep 30 & wait")
    [sleeper] = children_of(shell.pid, 1)
    journal_started(tmp_path / "journal.db", 1, pgid=shell.pid, started=started)

    error = interrupted_error(recover(tmp_path / "journal.db", power_log))

    assert error == (
        "interrupted: the agent stopped while this ran; its 2 remaining processes were "
        "killed; it was not run again"
    )
    assert is_gone(shell.pid) and is_gone(sleeper.pid)


def test_recovery_finds_a_group_whose_shell_died_with_the_agent(
    tmp_path: Path, power_log: Path, sessions: list[subprocess.Popen[bytes]]
) -> None:
    shell, started = start_session(sessions, "sleep 30 & wait")
    [sleeper] = children_of(shell.pid, 1)
    shell.kill()  # as the parent-death signal does
    shell.wait()
    journal_started(tmp_path / "journal.db", 1, pgid=shell.pid, started=started)

    error = interrupted_error(recover(tmp_path / "journal.db", power_log))

    assert "; its 1 remaining process was killed; " in error
    assert is_gone(sleeper.pid)


def test_recovery_says_when_the_processes_had_already_ended(
    tmp_path: Path, power_log: Path, sessions: list[subprocess.Popen[bytes]]
) -> None:
    shell, started = start_session(sessions, "sleep 30")
    os.killpg(shell.pid, signal.SIGKILL)
    shell.wait()
    journal_started(tmp_path / "journal.db", 1, pgid=shell.pid, started=started)

    error = interrupted_error(recover(tmp_path / "journal.db", power_log))

    assert error == (
        "interrupted: the agent stopped while this ran; its processes had already ended; "
        "it was not run again"
    )


def test_a_process_older_than_the_recorded_shell_is_not_killed(
    tmp_path: Path, power_log: Path, sessions: list[subprocess.Popen[bytes]]
) -> None:
    """The recorded pid now names an unrelated process (started before the recorded
    time): it and its group are left alone."""
    unrelated, started = start_session(sessions, "sleep 30 & wait")
    [child] = children_of(unrelated.pid, 1)
    journal_started(tmp_path / "journal.db", 1, pgid=unrelated.pid, started=started + 60)

    error = interrupted_error(recover(tmp_path / "journal.db", power_log))

    assert "its processes had already ended" in error
    assert not is_gone(unrelated.pid) and not is_gone(child.pid)


def test_a_group_member_older_than_the_recorded_shell_is_not_killed(
    tmp_path: Path, power_log: Path, sessions: list[subprocess.Popen[bytes]]
) -> None:
    """The leader is gone and its group lives on, but started before the recorded
    shell: it is another command's."""
    leader, started = start_session(sessions, "sleep 30 & wait")
    [member] = children_of(leader.pid, 1)
    leader.kill()
    leader.wait()
    journal_started(tmp_path / "journal.db", 1, pgid=leader.pid, started=started + 60)

    error = interrupted_error(recover(tmp_path / "journal.db", power_log))

    assert "its processes had already ended" in error
    assert not is_gone(member.pid)


def test_a_run_that_recorded_no_process_is_only_reported(tmp_path: Path, power_log: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.start(make_envelope("sleep 30", run_id=1))
    journal.close()

    error = interrupted_error(recover(tmp_path / "journal.db", power_log))

    assert error == "interrupted: the agent stopped while this ran; it was not run again"


def test_on_windows_the_job_object_ended_them_with_the_agent(
    tmp_path: Path, power_log: Path
) -> None:
    journal_started(tmp_path / "journal.db", 1, pgid=4242, started=time.time())

    update = recover(tmp_path / "journal.db", power_log, platform=WindowsPlatform())

    assert interrupted_error(update) == (
        "interrupted: the agent stopped while this ran; the system ended its processes "
        "with the agent; it was not run again"
    )


async def test_the_runner_journals_the_shell_it_started(harness: Harness, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    envelope = make_envelope(f"echo $$ > {pidfile}; sleep 30", timeout_s=60)
    harness.runner.submit(envelope)
    async with asyncio.timeout(5):
        while not pidfile.exists() or not pidfile.read_text().endswith("\n"):
            await asyncio.sleep(0.02)
    shell = int(pidfile.read_text())
    [run] = harness.journal.unfinished()
    assert (run.run_id, run.pgid, run.timeout_s) == (envelope.run_id, shell, 60.0)
    assert run.pgid_started == pytest.approx(psutil.Process(shell).create_time(), abs=0.01)
    await harness.runner.shutdown()
    await wait_until_gone(shell)
    [stopped] = harness.journal.unfinished()
    assert stopped.stopped


# Plays the agent: starts a command through the platform, prints the shell's pid, and
# dies by SIGKILL.
_DYING_AGENT = """
import asyncio, os, signal, sys
from wcms.agent.platform import current_platform

async def main():
    child = await current_platform().spawn_shell(
        sys.argv[1], cwd=None, env=os.environ, protocol=asyncio.SubprocessProtocol
    )
    print(child.pid, flush=True)
    sys.stdin.readline()
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def last_argument(pid: int) -> str:
    args = psutil.Process(pid).cmdline()
    return args[-1] if args else ""


def test_the_shell_dies_with_the_agent(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    agent = subprocess.Popen(
        [sys.executable, "-c", _DYING_AGENT, f"sleep 3; echo ran >> {marker}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert agent.stdin is not None and agent.stdout is not None
    shell = int(agent.stdout.readline())
    try:
        # The shell may still be between fork and exec (setpriv, then sh) for a moment.
        deadline = time.monotonic() + 5
        while not last_argument(shell).endswith(str(marker)):
            assert time.monotonic() < deadline, psutil.Process(shell).cmdline()
            time.sleep(0.01)
        agent.stdin.write(b"die\n")
        agent.stdin.flush()
        assert agent.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while not is_gone(shell):
            assert time.monotonic() < deadline, "the shell outlived the agent"
            time.sleep(0.01)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell, signal.SIGKILL)
    assert not marker.exists()


@pytest.mark.parametrize("setpriv", ["/nonexistent/setpriv", "/bin/false"])
async def test_without_a_usable_setpriv_commands_still_run(setpriv: str) -> None:
    platform = LinuxPlatform(setpriv=Path(setpriv))
    done = asyncio.get_running_loop().create_future()

    class Exited(asyncio.SubprocessProtocol):
        def process_exited(self) -> None:
            done.set_result(None)

    child = await platform.spawn_shell("exit 0", cwd=None, env=os.environ, protocol=Exited)
    async with asyncio.timeout(5):
        await done
    assert child.returncode == 0
    child.close()

"""The run manager: each run attempt starts at most once, and every outcome is reported."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from wcms.agent.journal import Journal
from wcms.agent.runner import CANCELLED_BEFORE_START, EXPIRED
from wcms.protocol import RunState

from .harness import Harness, is_gone, make_envelope, wait_until_gone

pytestmark = pytest.mark.anyio


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_a_duplicate_envelope_does_not_run_twice(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    envelope = make_envelope(f"echo ran >> {out}")
    assert harness.runner.submit(envelope) is True
    assert harness.runner.submit(envelope) is False  # while it runs
    final = await harness.final(envelope.run_id)
    assert harness.runner.submit(envelope) is False  # after it finished
    await harness.runner.join()
    assert final.state is RunState.SUCCEEDED
    assert lines(out) == ["ran"]


async def test_a_duplicate_after_restart_does_not_run_again(
    tmp_path: Path, power_log: Path
) -> None:
    out = tmp_path / "out.txt"
    envelope = make_envelope(f"echo ran >> {out}")
    journal = Journal(tmp_path / "journal.db")
    first = Harness(journal, power_log)
    first.runner.submit(envelope)
    await first.final(envelope.run_id)
    journal.close()

    journal = Journal(tmp_path / "journal.db")
    second = Harness(journal, power_log)
    second.runner.recover()
    assert second.runner.submit(envelope) is False
    await second.runner.join()
    journal.close()
    assert lines(out) == ["ran"]
    # The result was never acknowledged, so the new process reports it again.
    update = second.update(envelope.run_id)
    assert update is not None and update.state is RunState.SUCCEEDED


async def test_a_new_attempt_of_the_same_run_does_run(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    first = make_envelope(f"echo ran >> {out}", run_id=5, attempt=1)
    second = make_envelope(f"echo ran >> {out}", run_id=5, attempt=2)
    harness.runner.submit(first)
    await harness.final(5, 1)
    harness.runner.submit(second)
    await harness.final(5, 2)
    assert lines(out) == ["ran", "ran"]


async def test_running_is_reported_before_the_result(harness: Harness) -> None:
    envelope = make_envelope("sleep 0.3")
    harness.runner.submit(envelope)
    update = harness.update(envelope.run_id)
    assert update is not None and update.state is RunState.RUNNING
    assert harness.journal.lookup(envelope.run_id, 1).state == "started"  # type: ignore[union-attr]
    final = await harness.final(envelope.run_id)
    assert final.state is RunState.SUCCEEDED
    assert harness.journal.lookup(envelope.run_id, 1).state == "finished"  # type: ignore[union-attr]


async def test_a_duplicate_of_a_running_run_reports_running_again(harness: Harness) -> None:
    envelope = make_envelope("sleep 0.5")
    harness.runner.submit(envelope)
    harness.outbox.ack(envelope.run_id, 1, state=RunState.RUNNING)
    assert harness.update(envelope.run_id) is None
    harness.runner.submit(envelope)
    update = harness.update(envelope.run_id)
    assert update is not None and update.state is RunState.RUNNING


async def test_cancel_before_start_means_it_never_starts(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    envelope = make_envelope(f"echo ran >> {out}", run_id=77)
    harness.runner.cancel(77)
    harness.runner.submit(envelope)
    final = await harness.final(77)
    assert final.state is RunState.CANCELLED
    assert final.result is not None and final.result.error == CANCELLED_BEFORE_START
    # Delivered again: still not run, cancelled reported again until acknowledged.
    harness.outbox.ack(77, 1, state=RunState.CANCELLED)
    harness.runner.submit(envelope)
    await harness.runner.join()
    assert not out.exists()


async def test_cancel_while_running_kills_it(harness: Harness, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    envelope = make_envelope(f"sleep 30 & echo $! > {pidfile}; wait", timeout_s=60)
    harness.runner.submit(envelope)
    async with asyncio.timeout(5):
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
    harness.runner.cancel(envelope.run_id)
    final = await harness.final(envelope.run_id, timeout=5)
    assert final.state is RunState.CANCELLED
    assert not harness.runner.is_running(envelope.run_id)
    pid = int(pidfile.read_text())
    await wait_until_gone(pid)


async def test_cancel_after_finish_is_ignored(harness: Harness) -> None:
    envelope = make_envelope("true")
    harness.runner.submit(envelope)
    await harness.final(envelope.run_id)
    harness.runner.cancel(envelope.run_id)
    final = harness.update(envelope.run_id)
    assert final is not None and final.state is RunState.SUCCEEDED


async def test_an_expired_run_is_reported_and_not_started(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    past = datetime.now(UTC) - timedelta(seconds=1)
    envelope = make_envelope(f"echo ran >> {out}", expires_at=past)
    harness.runner.submit(envelope)
    final = await harness.final(envelope.run_id)
    assert final.state is RunState.FAILED
    assert final.result is not None and final.result.error == EXPIRED
    assert not out.exists()


async def test_an_unknown_type_fails_naming_what_is_supported(harness: Harness) -> None:
    envelope = make_envelope(type="install_program", payload={"name": "x"})
    harness.runner.submit(envelope)
    final = await harness.final(envelope.run_id)
    assert final.state is RunState.FAILED
    assert final.result is not None
    assert final.result.error is not None
    assert final.result.error.startswith(
        "unknown command type 'install_program' (this agent supports: change_password, "
        "create_user, delete_user, download_file, execute, install, kill, lock, logoff, "
    )


async def test_an_invalid_payload_fails_naming_the_field(harness: Harness) -> None:
    envelope = make_envelope(payload={"command": "true", "cwd": 5, "secrets": {"K": 1}})
    harness.runner.submit(envelope)
    final = await harness.final(envelope.run_id)
    assert final.state is RunState.FAILED
    assert final.result is not None and final.result.error is not None
    assert final.result.error.startswith("invalid payload for 'execute': field 'cwd'")
    assert "field 'secrets.K'" in final.result.error


async def test_stopping_leaves_the_run_to_be_reported_interrupted(
    tmp_path: Path, power_log: Path
) -> None:
    pidfile = tmp_path / "pid"
    envelope = make_envelope(f"sleep 30 & echo $! > {pidfile}; wait", timeout_s=60)
    journal = Journal(tmp_path / "journal.db")
    first = Harness(journal, power_log)
    first.runner.submit(envelope)
    async with asyncio.timeout(5):
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
    await first.runner.shutdown()
    pid = int(pidfile.read_text())
    await wait_until_gone(pid)
    assert journal.lookup(envelope.run_id, 1).state == "started"  # type: ignore[union-attr]
    journal.close()

    journal = Journal(tmp_path / "journal.db")
    second = Harness(journal, power_log)
    second.runner.recover()
    update = second.update(envelope.run_id)
    assert update is not None and update.state is RunState.FAILED
    assert update.result is not None and update.result.interrupted
    assert update.result.error == (
        "interrupted: the agent was stopped while this ran, and ended it; it was not run again"
    )
    assert second.runner.submit(envelope) is False
    journal.close()


async def test_an_acknowledged_result_is_not_sent_again_after_restart(harness: Harness) -> None:
    envelope = make_envelope("true")
    harness.runner.submit(envelope)
    await harness.final(envelope.run_id)
    harness.outbox.ack(envelope.run_id, 1, state=RunState.SUCCEEDED)
    assert harness.journal.lookup(envelope.run_id, 1).acked  # type: ignore[union-attr]
    assert harness.update(envelope.run_id) is None
    harness.runner.recover()
    assert harness.update(envelope.run_id) is None


async def test_a_run_delivered_again_after_its_ack_gets_its_result_again(
    harness: Harness, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    envelope = make_envelope(f"echo ran >> {out}")
    harness.runner.submit(envelope)
    await harness.final(envelope.run_id)
    harness.outbox.ack(envelope.run_id, 1, state=RunState.SUCCEEDED)
    assert harness.runner.submit(envelope) is False
    update = harness.update(envelope.run_id)
    assert update is not None and update.state is RunState.SUCCEEDED
    assert lines(out) == ["ran"]


async def test_a_power_run_is_recorded_not_performed(harness: Harness, power_log: Path) -> None:
    envelope = make_envelope(type="reboot", payload={"delay_s": 5, "message": "patching"})
    harness.runner.submit(envelope)
    final = await harness.final(envelope.run_id)
    assert final.state is RunState.SUCCEEDED
    assert len(lines(power_log)) == 1


async def test_stopping_right_after_a_start_still_kills_the_command(harness: Harness) -> None:
    marker = "30.4242"
    envelope = make_envelope(f"sleep {marker} & wait", timeout_s=60)

    def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
        found = []
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if marker in " ".join(process.cmdline()) and not is_gone(process.pid):
                    found.append(process)
        return found

    harness.runner.submit(envelope)
    # Stop the moment the shell exists, while the agent may still be connecting its
    # pipes; not before: a stop before the spawn leaves nothing to kill and proves nothing.
    async with asyncio.timeout(5):
        while not (shells := alive(psutil.Process().children())):
            await asyncio.sleep(0)
    async with asyncio.timeout(2):
        await harness.runner.shutdown()
    for shell in shells:
        await wait_until_gone(shell.pid)
    # And whatever the shell started (the sleep, in its process group) is gone too.
    async with asyncio.timeout(2):
        while alive(list(psutil.process_iter())):
            await asyncio.sleep(0.02)

"""The execute action against the real /bin/sh."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from wcms.agent.actions import ActionContext, ExecuteAction
from wcms.agent.actions.base import ActionOutcome
from wcms.agent.platform import current_platform
from wcms.protocol import RunState

from .harness import is_gone, make_envelope, wait_until_gone

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024


async def execute(
    payload: dict[str, Any], *, timeout_s: float = 10.0, cancelled: asyncio.Event | None = None
) -> ActionOutcome:
    action = ExecuteAction(current_platform(), max_output_bytes=LIMIT)
    envelope = make_envelope(payload=payload, timeout_s=timeout_s)
    return await action.run(envelope, ActionContext(cancelled=cancelled or asyncio.Event()))


async def read_pid(path: Path) -> int:
    async with asyncio.timeout(5):
        while not path.exists() or not path.read_text().strip():
            await asyncio.sleep(0.02)
    return int(path.read_text())


async def test_it_reports_success_with_output() -> None:
    outcome = await execute({"command": "echo hello; echo warn >&2"})
    assert outcome.state is RunState.SUCCEEDED
    assert outcome.result.exit_code == 0
    assert outcome.result.stdout == "hello\n"
    assert outcome.result.stderr == "warn\n"
    assert outcome.result.error is None
    assert outcome.result.duration_ms is not None


async def test_a_non_zero_exit_fails_with_the_code() -> None:
    outcome = await execute({"command": "echo oops >&2; exit 3"})
    assert outcome.state is RunState.FAILED
    assert outcome.result.exit_code == 3
    assert outcome.result.stderr == "oops\n"
    assert outcome.result.error == "exited with code 3"


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    outcome = await execute(
        {"command": f"sleep 30 & echo $! > {pidfile}; echo started; wait"}, timeout_s=0.5
    )
    assert time.monotonic() - started < 5
    assert outcome.state is RunState.TIMED_OUT
    assert outcome.result.error == "timed out after 0.5 s"
    assert outcome.result.stdout == "started\n"
    await wait_until_gone(int(pidfile.read_text()))


async def test_cancel_kills_the_command(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    cancelled = asyncio.Event()
    task = asyncio.create_task(
        execute({"command": f"sleep 30 & echo $! > {pidfile}; wait"}, cancelled=cancelled)
    )
    pid = await read_pid(pidfile)
    cancelled.set()
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.state is RunState.CANCELLED
    await wait_until_gone(pid)


async def test_a_missing_working_directory_fails_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    outcome = await execute({"command": "pwd", "cwd": str(missing)})
    assert outcome.state is RunState.FAILED
    assert outcome.result.exit_code is None
    assert outcome.result.error == (
        f"working directory '{missing}' does not exist or is not a directory"
    )


async def test_it_runs_in_the_working_directory(tmp_path: Path) -> None:
    outcome = await execute({"command": "pwd", "cwd": str(tmp_path)})
    assert outcome.result.stdout.strip() == str(tmp_path)


async def test_output_is_capped_and_flagged_while_the_command_runs_to_the_end() -> None:
    script = "import sys; sys.stdout.write('x' * 1_000_000); sys.stderr.write('e' * 10)"
    outcome = await execute({"command": f'{sys.executable} -c "{script}"'})
    assert outcome.state is RunState.SUCCEEDED
    assert len(outcome.result.stdout) == LIMIT
    assert outcome.result.stdout_truncated is True
    assert outcome.result.stderr == "e" * 10
    assert outcome.result.stderr_truncated is False


async def test_secrets_reach_the_environment_but_not_the_output() -> None:
    outcome = await execute(
        {
            "command": 'echo "token=$API_TOKEN"; echo "$API_TOKEN" >&2; '
            'echo "len=${#API_TOKEN} plain=$PLAIN"',
            "env": {"PLAIN": "visible"},
            "secrets": {"API_TOKEN": "s3cr3t-value"},
        }
    )
    assert outcome.state is RunState.SUCCEEDED
    assert outcome.result.stdout == "token=***\nlen=12 plain=visible\n"
    assert outcome.result.stderr == "***\n"
    assert "s3cr3t" not in outcome.result.model_dump_json()


async def test_the_agent_environment_is_inherited() -> None:
    outcome = await execute({"command": "echo $PATH"})
    assert outcome.result.stdout.strip() == os.environ["PATH"]


async def test_the_policy_refuses_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outcome = await execute({"command": f"touch {marker}; rm -rf /"})
    assert outcome.state is RunState.FAILED
    assert outcome.result.exit_code is None
    assert outcome.result.error is not None
    assert outcome.result.error.startswith("refused: ")
    assert not marker.exists()


async def test_undecodable_output_is_replaced_not_fatal() -> None:
    outcome = await execute({"command": "printf 'a\\377b'"})
    assert outcome.result.stdout == "a\ufffdb"


async def test_a_background_process_holding_the_pipe_does_not_block_the_result(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "daemon.pid"
    started = time.monotonic()
    outcome = await execute({"command": f"sleep 30 & echo $! > {pidfile}; echo done"})
    assert outcome.state is RunState.SUCCEEDED
    assert outcome.result.stdout == "done\n"
    assert time.monotonic() - started < 5
    # The command exited by itself: what it left running is not killed.
    pid = int(pidfile.read_text())
    assert not is_gone(pid)
    os.kill(pid, 9)

"""program_logs and program_send against a stand-in console: what a follower gets,
how much, and that a cancel ends a follow even while the program prints nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wcms.agent.actions.base import ActionContext
from wcms.agent.actions.programs import (
    FOLLOW_LIMIT_CHARS,
    ProgramLogsAction,
    ProgramSendAction,
    RateLimit,
)
from wcms.agent.progress import ProgressQueue, RunProgressReporter
from wcms.protocol import RunEnvelope, RunState

pytestmark = pytest.mark.anyio


class Following:
    """Lines as the test puts them; the offset counts them."""

    def __init__(self, coming: asyncio.Queue[str]) -> None:
        self.coming = coming
        self.offset = 0

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        while True:
            line = await self.coming.get()
            self.offset += 1
            yield line

    async def aclose(self) -> None:
        pass


class Console:
    """A program console whose future lines the test puts in a queue."""

    def __init__(self, past: list[str]) -> None:
        self.past = past
        self.coming: asyncio.Queue[str] = asyncio.Queue()
        self.sent: list[str] = []

    def console(self, name: str, lines: int) -> list[str]:
        if name != "mc":
            raise LookupError(f"no program {name!r} on this machine")
        return self.past[-lines:] if lines else []

    def follow(self, name: str, offset: int | None = None) -> Following:
        return Following(self.coming)

    async def send(self, name: str, text: str) -> str:
        self.sent.append(text)
        return f"answer to {text}"


def envelope(command_type: str, **payload: object) -> RunEnvelope:
    return RunEnvelope(run_id=1, command_id=1, type=command_type, payload=payload, timeout_s=60)


def context(queue: ProgressQueue) -> ActionContext:
    progress = RunProgressReporter(queue, 1, 1, limit=1_000_000)
    return ActionContext(cancelled=asyncio.Event(), progress=progress)


async def test_the_last_lines_are_the_result() -> None:
    console = Console(["a", "b", "c"])
    outcome = await ProgramLogsAction(console).run(
        envelope("program_logs", name="mc", lines=2), context(ProgressQueue())
    )
    assert outcome.state == RunState.SUCCEEDED
    assert outcome.result.stdout == "b\nc\n"


async def test_an_unknown_program_fails_in_words() -> None:
    outcome_error = None
    try:
        await ProgramLogsAction(Console([])).run(
            envelope("program_logs", name="ark", lines=2), context(ProgressQueue())
        )
    except Exception as exc:  # ActionFailed: the registry turns it into a failed run
        outcome_error = str(exc)
    assert outcome_error == "no program 'ark' on this machine"


async def test_a_follow_streams_new_lines_and_a_cancel_ends_it_in_silence() -> None:
    console = Console(["old"])
    queue = ProgressQueue()
    ctx = context(queue)
    run = asyncio.create_task(
        ProgramLogsAction(console).run(
            envelope("program_logs", name="mc", lines=1, follow_s=60), ctx
        )
    )
    await console.coming.put("new line")
    await asyncio.sleep(0.05)
    streamed = "".join(p.stdout for p in queue.take())
    assert streamed == "old\nnew line\n"
    ctx.cancelled.set()  # nothing more is printed: the cancel alone ends it
    outcome = await asyncio.wait_for(run, 2)
    assert outcome.state == RunState.CANCELLED
    assert outcome.result.stdout == "old\nnew line\n"
    assert outcome.result.data == {"offset": 1}


async def test_a_follow_ends_once_it_streamed_its_share() -> None:
    console = Console([])
    line = "x" * 1023
    for _ in range(FOLLOW_LIMIT_CHARS // 1024 + 5):
        console.coming.put_nowait(line)
    outcome = await asyncio.wait_for(
        ProgramLogsAction(console).run(
            envelope("program_logs", name="mc", lines=0, follow_s=60), context(ProgressQueue())
        ),
        5,
    )
    assert outcome.state == RunState.SUCCEEDED
    assert FOLLOW_LIMIT_CHARS <= len(outcome.result.stdout) < FOLLOW_LIMIT_CHARS + 1024


def test_a_spamming_console_is_cut_to_the_rate_with_a_marker() -> None:
    now = [100.0]
    limit = RateLimit(3, clock=lambda: now[0])
    admitted = [limit.admit(f"l{n}") for n in range(5)]
    assert admitted == [["l0"], ["l1"], ["l2"], [], []]
    now[0] = 101.2
    assert limit.admit("l5") == [
        "[... 2 lines left out: more than 3 a second ...]",
        "l5",
    ]
    assert limit.admit("l6") == ["l6"]


async def test_send_returns_the_game_answer() -> None:
    console = Console([])
    outcome = await ProgramSendAction(console).run(
        envelope("program_send", name="mc", text="list"), context(ProgressQueue())
    )
    assert console.sent == ["list"]
    assert outcome.result.stdout == "answer to list"

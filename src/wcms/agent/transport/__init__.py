"""Ways of talking to the server: a WebSocket, or HTTP long-poll where proxies break
WebSockets. Both carry the same protocol models and feed the same run manager."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from wcms.agent.client import ServerClient
from wcms.agent.collectors import StatusCollector
from wcms.agent.outbox import Outbox
from wcms.agent.progress import ProgressQueue
from wcms.agent.runner import RunManager
from wcms.agent.transport.programs import ProgramFeed
from wcms.protocol import Inventory


@dataclass(frozen=True)
class ChannelContext:
    """What every channel works with."""

    client: ServerClient
    machine_id: str
    runner: RunManager
    outbox: Outbox
    status: StatusCollector
    # Blocking: channels call it in a thread.
    inventory: Callable[[], Inventory]
    # Seconds between heartbeats; None takes the server's value.
    heartbeat_interval: float | None
    # Live progress of running runs, sent to servers that take it (protocol 2).
    progress: ProgressQueue = field(default_factory=ProgressQueue)
    # Supervised programs, reported to servers that take them (protocol 3).
    programs: ProgramFeed | None = None


# Progress reports of one run go out at most this often; the rest is merged meanwhile.
PROGRESS_INTERVAL_S = 0.5


class Channel(ABC):
    """One connection to the server, from connect to drop."""

    name = "channel"

    def __init__(self, ctx: ChannelContext) -> None:
        self.ctx = ctx

    @abstractmethod
    async def serve(self, on_ready: Callable[[], None]) -> None:
        """Connect, call ``on_ready`` once the server accepted this agent session, then
        exchange heartbeats, runs and updates until the connection ends.

        Raises TransportError (or a more specific AgentError) when the connection
        fails or drops; returns normally only when the channel chose to end (a
        fallback channel whose time is up).
        """

    @abstractmethod
    async def say_goodbye(self, reason: str) -> None:
        """Best effort, quickly: send pending run updates and tell the server the agent
        is stopping. The caller bounds the time it takes."""


async def first_to_end(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines together until one ends; cancel the others, then re-raise
    the ending one's exception, if any."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()

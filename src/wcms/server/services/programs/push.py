"""Telling a connected agent that its programs changed.

A link that takes programs (a WebSocket of an agent speaking protocol 3 or later,
after its welcome) is sent the whole set; a long-polling one is woken, and its poll
answers the set. A push that fails is not retried here: the agent's next hello or
poll names its revision, and a stale one is answered with the set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from wcms.protocol.programs import ProgramSet
from wcms.server.services.links import LinkRegistry


@runtime_checkable
class PushesPrograms(Protocol):
    """A link the server sends program sets over."""

    @property
    def takes_programs(self) -> bool:
        """Whether :meth:`offer_programs` would send now (protocol 3, welcomed, open)."""

    async def offer_programs(self, programs: ProgramSet) -> bool:
        """Send the machine's set; False if it did not go out."""


@runtime_checkable
class FetchesPrograms(Protocol):
    """A link whose agent fetches its set itself (a long poll)."""

    def programs_changed(self) -> None:
        """Wake the agent's waiting poll, if any, to answer the new set."""


class ProgramPush:
    def __init__(
        self, registry: LinkRegistry, load: Callable[[str], Awaitable[ProgramSet]]
    ) -> None:
        self._registry = registry
        self._load = load

    async def changed(self, machine_id: str) -> bool:
        """Tell the machine's agent, if connected here; True if a set was sent."""
        link = self._registry.get(machine_id)
        if link is None or link.closed:
            return False
        if isinstance(link, PushesPrograms):
            if not link.takes_programs:
                return False
            return await link.offer_programs(await self._load(machine_id))
        if isinstance(link, FetchesPrograms):
            link.programs_changed()
        return False

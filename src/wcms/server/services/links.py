"""Live agent connections, whatever the transport, and the registry that holds them.

A link is one agent process talking to this server: a WebSocket, or a run of HTTP
long-poll requests sharing a session id. The registry knows at most one link per
machine and remembers the sessions it replaced, so that a replaced session that speaks
again reveals two live agents claiming one machine id (a cloned disk image).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from wcms.protocol import RunEnvelope

# How long a replaced session is remembered as "should be gone".
SUPERSEDED_MEMORY_S = 3600.0


class AgentLink(ABC):
    """One agent process's connection to this server."""

    transport: str = ""

    def __init__(self, machine_id: str, session_id: str) -> None:
        self.machine_id = machine_id
        self.session_id = session_id
        self.last_message_at = time.monotonic()
        self.closed = False

    def touch(self) -> None:
        self.last_message_at = time.monotonic()

    def silent(self, now: float, limit: float) -> bool:
        """Whether the agent has said nothing for longer than ``limit`` seconds before
        ``now`` (a :func:`time.monotonic` time): it is gone without closing the link."""
        return now - self.last_message_at > limit

    @property
    def pushes(self) -> bool:
        """Whether :meth:`offer` sends runs right now (rather than the agent fetching)."""
        return False

    @abstractmethod
    async def offer(self, runs: Sequence[RunEnvelope]) -> bool:
        """Hand runs to the agent; True if they were sent, False if the agent fetches them."""

    @abstractmethod
    async def cancel(self, run_id: int) -> None:
        """Tell the agent to stop a run."""

    @abstractmethod
    async def close(self, code: int, reason: str) -> None:
        """End the connection; the agent sees ``reason`` (an error code)."""


class LinkRegistry:
    """The links this server process holds, one per machine."""

    def __init__(self) -> None:
        self._links: dict[str, AgentLink] = {}
        self._superseded: dict[str, dict[str, float]] = {}

    def get(self, machine_id: str) -> AgentLink | None:
        return self._links.get(machine_id)

    def __len__(self) -> int:
        return len(self._links)

    def links(self) -> list[AgentLink]:
        return list(self._links.values())

    def was_superseded(self, machine_id: str, session_id: str) -> bool:
        sessions = self._superseded.get(machine_id)
        if not sessions:
            return False
        seen = sessions.get(session_id)
        return seen is not None and time.monotonic() - seen < SUPERSEDED_MEMORY_S

    def supersede(self, machine_id: str, session_id: str) -> None:
        """Remember ``session_id`` as one that should be gone from ``machine_id``, from
        now for SUPERSEDED_MEMORY_S."""
        sessions = self._superseded.setdefault(machine_id, {})
        sessions[session_id] = time.monotonic()
        if len(sessions) > 16:
            del sessions[min(sessions, key=sessions.__getitem__)]

    def put(self, link: AgentLink) -> AgentLink | None:
        """Make ``link`` the machine's link; returns the link it replaced, if any."""
        old = self._links.get(link.machine_id)
        self._links[link.machine_id] = link
        if old is not None and old is not link and old.session_id != link.session_id:
            self.supersede(link.machine_id, old.session_id)
        return old if old is not link else None

    def remove(self, link: AgentLink) -> bool:
        """Forget ``link`` if it is still the machine's link."""
        if self._links.get(link.machine_id) is link:
            del self._links[link.machine_id]
            return True
        return False

    def forget_sessions(self, machine_id: str) -> None:
        self._superseded.pop(machine_id, None)

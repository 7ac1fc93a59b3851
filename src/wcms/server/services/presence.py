"""Who is online: connections come and go, machines go online and offline.

Online the moment an agent connects. Offline at once when the agent says it is shutting
down; after ``offline_grace`` when a connection drops (a quick reconnect cancels it, so
nothing flaps); after ``heartbeat_timeout`` when a connection stays open but silent.
Every transition is stored with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from wcms.protocol import CloseCode, ErrorCode
from wcms.server.bus import Bus, InProcessBus
from wcms.server.errors import Conflict
from wcms.server.services.batching import Batcher
from wcms.server.services.clock import utcnow
from wcms.server.services.links import AgentLink, LinkRegistry
from wcms.server.settings import Settings
from wcms.server.store import machines as machine_store
from wcms.server.store.engine import Database
from wcms.server.store.machines import LinkSeen, PresenceChange

log = logging.getLogger("wcms.presence")

# A presence change, and the link that caused it when it is a connection.
_Transition = tuple[PresenceChange, LinkSeen | None]


class Presence:
    """Tracks live links and turns their coming and going into presence transitions."""

    def __init__(
        self,
        db: Database,
        registry: LinkRegistry,
        settings: Settings,
        *,
        bus: Bus | None = None,
    ) -> None:
        self._db = db
        self._bus = bus or InProcessBus()
        self._registry = registry
        self._settings = settings
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Every presence write of this process goes through here (see set_presence_many).
        self._writes: Batcher[_Transition, bool] = Batcher(self._write, name="presence")

    @property
    def registry(self) -> LinkRegistry:
        return self._registry

    async def attach(self, link: AgentLink) -> None:
        """Make ``link`` the machine's live link and mark the machine online.

        Raises Conflict (``duplicate_machine``) when another agent process that is still
        alive already holds the machine id, and flags the machine for the admin.
        """
        current = self._registry.get(link.machine_id)
        duplicate = self._registry.was_superseded(link.machine_id, link.session_id) or (
            current is not None
            and current.session_id != link.session_id
            and not current.closed
            and current.transport == "ws"
        )
        if duplicate:
            await self.flag_conflict(link.machine_id, claimant={"session": link.session_id})
            raise Conflict(
                f"another agent is already connected as machine {link.machine_id!r}; "
                "each machine needs its own id (cloned disk images share one: give the "
                "clone its own OS machine id or start its agent with --machine-id)",
                code=ErrorCode.DUPLICATE_MACHINE,
            )
        replaced = self._registry.put(link)
        if replaced is not None and not replaced.closed:
            await replaced.close(CloseCode.DUPLICATE, "replaced")
        self._cancel_timer(link.machine_id)
        now = utcnow()
        change = PresenceChange(link.machine_id, "online", "connected", now)
        seen = LinkSeen(link.machine_id, link.transport, now)
        changed = await self._writes.submit((change, seen))
        if changed:
            self._publish(link.machine_id, "online", "connected")

    async def detach(self, link: AgentLink, *, reason: str | None = None) -> None:
        """The link has ended. With a ``reason`` (the agent said goodbye) the machine is
        offline now; without one it gets ``offline_grace`` seconds to come back."""
        link.closed = True
        if not self._registry.remove(link):
            return  # a newer link already serves this machine
        if reason is not None:
            await self.mark_offline(link.machine_id, reason)
        else:
            self._start_timer(link.machine_id, self._settings.offline_grace, "connection_lost")

    async def mark_offline(self, machine_id: str, reason: str) -> None:
        self._cancel_timer(machine_id)
        change = PresenceChange(machine_id, "offline", reason, utcnow())
        changed = await self._writes.submit((change, None))
        if changed:
            log.info("machine %s offline (%s)", machine_id, reason)
            self._publish(machine_id, "offline", reason)

    async def _write(self, transitions: list[_Transition]) -> list[bool]:
        """One transaction for every presence change that arrived together."""
        async with self._db.begin() as conn:
            changed = await machine_store.set_presence_many(conn, [c for c, _ in transitions])
            await machine_store.set_links_seen(conn, [s for _, s in transitions if s is not None])
        return changed

    async def disconnect(self, machine_id: str, *, code: int, reason: str) -> None:
        """Close the machine's link, if this process holds one."""
        link = self._registry.get(machine_id)
        if link is not None:
            self._registry.remove(link)
            link.closed = True
            await link.close(code, reason)

    # Free-form: what is known of the claimant (session, host name, address, MACs).
    async def flag_conflict(self, machine_id: str, *, claimant: dict[str, Any]) -> None:
        detail = {"detected_at": utcnow().isoformat(), **claimant}
        log.warning("two agents claim machine %s: %s", machine_id, detail)
        async with self._db.begin() as conn:
            await machine_store.set_conflict(conn, machine_id, detail)

    async def recover_after_restart(self) -> None:
        """Machines the database thinks are online get a grace period to reconnect."""
        async with self._db.connect() as conn:
            online = await machine_store.online_ids(conn)
        grace = max(self._settings.offline_grace, self._settings.heartbeat_interval)
        for machine_id in online:
            if self._registry.get(machine_id) is None:
                self._start_timer(machine_id, grace, "not_reconnected")

    async def sweep(self) -> None:
        """Close links that have gone silent for longer than the heartbeat timeout."""
        now = time.monotonic()
        limit = self._settings.effective_heartbeat_timeout
        for link in self._registry.links():
            # A long-poll is silent while it waits, so HTTP links get the poll on top.
            silent_for = limit + (self._settings.poll_timeout if link.transport == "http" else 0)
            if now - link.last_message_at > silent_for:
                self._registry.remove(link)
                link.closed = True
                await link.close(CloseCode.SILENT, "heartbeat_timeout")
                await self.mark_offline(link.machine_id, "heartbeat_timeout")

    def _publish(self, machine_id: str, status: str, reason: str) -> None:
        event = {"id": machine_id, "status": status, "reason": reason, "at": utcnow().isoformat()}
        self._bus.publish("presence", event)

    def online_count(self) -> int:
        return len(self._registry)

    def _start_timer(self, machine_id: str, delay: float, reason: str) -> None:
        self._cancel_timer(machine_id)
        loop = asyncio.get_running_loop()
        self._timers[machine_id] = loop.call_later(delay, self._expire, machine_id, reason)

    def _cancel_timer(self, machine_id: str) -> None:
        timer = self._timers.pop(machine_id, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, machine_id: str, reason: str) -> None:
        self._timers.pop(machine_id, None)
        if self._registry.get(machine_id) is not None:
            return
        task = asyncio.get_running_loop().create_task(self.mark_offline(machine_id, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)

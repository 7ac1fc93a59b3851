"""Who is online: connections come and go, machines go online and offline.

Online the moment an agent connects. Offline at once when the agent says it is shutting
down; after ``offline_grace`` when a connection drops (a quick reconnect cancels it, so
nothing flaps); after ``heartbeat_timeout`` when a connection stays open but silent.
Every transition is stored with its reason; one whose write fails (the database is
down, the disk full) is kept and written again on each sweep until it is stored or no
longer true.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from wcms.protocol import CloseCode, ErrorCode
from wcms.server.bus import Bus, InProcessBus
from wcms.server.errors import Conflict, StorageError
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
        # Per machine, the newest offline change whose write failed, to write again.
        self._unstored: dict[str, PresenceChange] = {}
        # Per machine, the number of its newest write attempt: an older attempt that
        # ends later must not undo what a newer one decided.
        self._attempts: dict[str, int] = {}
        self._attempt = 0
        self._failing = False

    @property
    def registry(self) -> LinkRegistry:
        return self._registry

    async def attach(self, link: AgentLink) -> None:
        """Make ``link`` the machine's live link and mark the machine online.

        The link authenticated with the machine's credential, so it is the machine's
        agent: it replaces a live link this server has not seen end (a machine that
        lost power and came straight back left it open, no FIN or RST ever came).

        Raises Conflict (``duplicate_machine``) when the link's session is one that an
        earlier link replaced: that agent process is still alive, so two of them claim
        the machine id (a cloned disk image), and the machine is flagged for the admin.
        Raises StorageError when the online write fails: the link is dropped as if it
        had closed, and the agent connects again later.
        """
        machine_id = link.machine_id
        if self._registry.was_superseded(machine_id, link.session_id):
            # Remembered afresh: the refused agent keeps retrying, and must still be
            # refused once the first memory would have faded (no clones taking turns).
            self._registry.supersede(machine_id, link.session_id)
            await self.flag_conflict(machine_id, claimant={"session": link.session_id})
            raise Conflict(
                f"another agent is already connected as machine {machine_id!r}; "
                "each machine needs its own id (cloned disk images share one: give the "
                "clone its own OS machine id or start its agent with --machine-id)",
                code=ErrorCode.DUPLICATE_MACHINE,
            )
        replaced = self._registry.put(link)
        if replaced is not None and not replaced.closed:
            log.info("machine %s: a new connection replaces one still open", machine_id)
            await replaced.close(CloseCode.DUPLICATE, "replaced")
        self._cancel_timer(machine_id)
        now = utcnow()
        change = PresenceChange(machine_id, "online", "connected", now)
        try:
            changed = await self._store(change, LinkSeen(machine_id, link.transport, now))
        except StorageError:
            await self.detach(link)
            raise
        if changed:
            self._publish(machine_id, "online", "connected")

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
        """Mark the machine offline now. If the write fails it is kept, and each
        :meth:`sweep` writes it again until it is stored or the machine has a live
        link again; this never raises StorageError."""
        self._cancel_timer(machine_id)
        change = PresenceChange(machine_id, "offline", reason, utcnow())
        await self._store_offline(change)

    async def _store_offline(self, change: PresenceChange) -> None:
        try:
            changed = await self._store(change)
        except StorageError:
            return  # kept by _store, written again by the next sweep
        if changed:
            log.info("machine %s offline (%s)", change.machine_id, change.reason)
            self._publish(change.machine_id, "offline", change.reason)

    async def _store(self, change: PresenceChange, seen: LinkSeen | None = None) -> bool:
        """Write one change; returns whether it changed the machine's status.

        Once stored, it supersedes any older change of the machine still unstored. If
        its write fails, StorageError is raised, and an offline change is kept to be
        written again, unless a newer change of the machine was tried meanwhile.
        """
        machine_id = change.machine_id
        self._attempt += 1
        attempt = self._attempts[machine_id] = self._attempt
        try:
            changed = await self._writes.submit((change, seen))
        except StorageError as exc:
            if change.status == "offline" and self._attempts[machine_id] == attempt:
                self._keep(change, exc)
            raise
        if self._attempts[machine_id] == attempt:
            self._unstored.pop(machine_id, None)
            self._recovered()
        return changed

    def _keep(self, change: PresenceChange, exc: StorageError) -> None:
        if not exc.retryable:
            log.error("machine %s: offline not stored: %s", change.machine_id, exc)
            self._unstored.pop(change.machine_id, None)
            return
        if not self._failing:
            # Said once per outage: the sweep retries every second.
            log.warning("presence changes not stored (%s); retrying until they are", exc)
            self._failing = True
        self._unstored[change.machine_id] = change

    def _recovered(self) -> None:
        if self._failing and not self._unstored:
            log.info("presence changes stored again")
            self._failing = False

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
        """Close links that have gone silent for longer than the heartbeat timeout, and
        write again the offline changes whose write failed."""
        now = time.monotonic()
        limit = self._settings.effective_heartbeat_timeout
        for link in self._registry.links():
            if link.silent(now, limit):
                self._registry.remove(link)
                link.closed = True
                await link.close(CloseCode.SILENT, "heartbeat_timeout")
                await self.mark_offline(link.machine_id, "heartbeat_timeout")
        await self._retry_unstored()

    async def _retry_unstored(self) -> None:
        retries = []
        for machine_id, change in list(self._unstored.items()):
            link = self._registry.get(machine_id)
            if link is not None and not link.closed:
                # Online again: the machine's own online write tells the truth now.
                del self._unstored[machine_id]
            else:
                retries.append(self._store_offline(change))
        # Together, so that they share one database round.
        await asyncio.gather(*retries)
        self._recovered()

    def pending_writes(self) -> int:
        """Presence changes whose write failed and that are written again on each sweep."""
        return len(self._unstored)

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

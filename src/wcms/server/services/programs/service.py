"""The program service that handlers and agent channels use."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.program_admin import (
    PROGRAM_EVENT_TOPIC,
    PROGRAM_TOPIC,
    ProgramCreate,
    ProgramEventOut,
    ProgramHistory,
    ProgramOut,
    ProgramPatch,
)
from wcms.protocol.programs import ProgramReport, ProgramReportAck, ProgramSet, redact_probe_url
from wcms.server.bus import Bus, InProcessBus
from wcms.server.crypto import Sealer
from wcms.server.errors import Conflict, NotFound
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.services.links import LinkRegistry
from wcms.server.services.programs import definitions
from wcms.server.services.programs.history import history_out
from wcms.server.services.programs.presets import build_spec
from wcms.server.services.programs.push import ProgramPush
from wcms.server.services.programs.reports import ReportWriter
from wcms.server.services.programs.views import event_out, program_out
from wcms.server.services.programs.waits import Goal, Waiters
from wcms.server.services.selectors import resolve
from wcms.server.store import machines as machine_store
from wcms.server.store import program_events as event_store
from wcms.server.store import program_samples as sample_store
from wcms.server.store import programs as store
from wcms.server.store.engine import Database
from wcms.server.store.programs import Definition, NewProgram, ProgramRecord

# How often a waiter re-reads the program even without news: another replica may hold
# the agent's link.
RECHECK_S = 2.0


class Programs:
    """Programs: definitions and desired state from administrators, status and state
    changes from agents, and each machine's set pushed to its agent."""

    def __init__(
        self,
        db: Database,
        registry: LinkRegistry,
        sealer: Sealer,
        *,
        bus: Bus | None = None,
        sample_every_s: float = 15.0,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._bus = bus or InProcessBus()
        self._push = ProgramPush(registry, self.program_set)
        self._reports = ReportWriter(db, self._load_set, sample_every_s=sample_every_s)
        self._waiters = Waiters()

    # --- the admin side ------------------------------------------------------------

    async def create(self, request: ProgramCreate, *, actor: Actor) -> ProgramOut:
        """Define a program on its machine (stopped, or started with ``autostart``)."""
        spec = build_spec(request, probe_url=request.probe)
        data, sealed = definitions.stored(spec, self._sealer)
        now = utcnow()
        target = f"{request.machine}/{request.name}"
        try:
            async with self._db.begin() as conn:
                if not await machine_store.exists(conn, request.machine):
                    raise NotFound(
                        f"no machine {request.machine!r}", field="machine", code="unknown_machine"
                    )
                revision = await store.bump_revision(conn, request.machine)
                new = NewProgram(
                    machine_id=request.machine,
                    name=request.name,
                    preset=request.preset,
                    spec=data,
                    sealed_secrets=sealed,
                    desired=spec.desired,
                    restart_seq=0,
                    revision=revision,
                    created_at=now,
                    updated_at=now,
                    created_by=actor.name,
                )
                await store.create(conn, new)
                await record(conn, actor, "program.create", target=target, detail=_audit(data))
        except IntegrityError as exc:
            raise Conflict(
                f"machine {request.machine!r} already has a program {request.name!r}",
                field="name",
            ) from exc
        await self._changed(request.machine, request.name)
        return await self.get(request.machine, request.name)

    async def update(
        self, machine_id: str, name: str, patch: ProgramPatch, *, actor: Actor
    ) -> ProgramOut:
        """Change a program's definition; the fields the patch gives replace the old."""
        async with self._db.begin() as conn:
            program = await _program(conn, machine_id, name)
            old = definitions.opened(program, self._sealer)
            spec = definitions.patched(old, patch)
            if spec != old:
                data, sealed = definitions.stored(spec, self._sealer)
                revision = await store.bump_revision(conn, machine_id)
                definition = Definition(data, sealed, revision, utcnow())
                await store.redefine(conn, program.id, definition)
            detail = {"fields": sorted(patch.model_fields_set)}
            await record(
                conn, actor, "program.update", target=f"{machine_id}/{name}", detail=detail
            )
        await self._changed(machine_id, name)
        return await self.get(machine_id, name)

    async def remove(self, machine_id: str, name: str, *, actor: Actor) -> None:
        """Forget a program; its agent stops it when it gets the new set."""
        async with self._db.begin() as conn:
            program = await _program(conn, machine_id, name)
            await store.remove(conn, program.id)
            await store.bump_revision(conn, machine_id)
            await record(conn, actor, "program.remove", target=f"{machine_id}/{name}")
        await self._changed(machine_id, name)

    async def start(self, machine_id: str, name: str, *, actor: Actor) -> ProgramOut:
        return await self._want(machine_id, name, "running", restart=False, actor=actor)

    async def stop(self, machine_id: str, name: str, *, actor: Actor) -> ProgramOut:
        return await self._want(machine_id, name, "stopped", restart=False, actor=actor)

    async def restart(self, machine_id: str, name: str, *, actor: Actor) -> ProgramOut:
        """Raise the program's restart request (and mean it to run): its agent restarts
        it, or starts it if it was stopped."""
        return await self._want(machine_id, name, "running", restart=True, actor=actor)

    async def get(self, machine_id: str, name: str) -> ProgramOut:
        async with self._db.connect() as conn:
            program = await _program(conn, machine_id, name)
            programs_set = await store.set_of(conn, machine_id)
        return program_out(program, programs_set, now=utcnow())

    async def list_programs(self, selector: str | None = None) -> list[ProgramOut]:
        """The programs of the machines ``selector`` matches (every program without)."""
        async with self._db.connect() as conn:
            machine_ids = await resolve(conn, selector) if selector else None
            found = await store.of_machines(conn, machine_ids)
            sets = await store.sets_of(conn, {p.machine_id for p in found})
        now = utcnow()
        return [
            program_out(p, sets.get(p.machine_id) or _no_set(p.machine_id), now=now) for p in found
        ]

    async def events(
        self, machine_id: str, name: str, *, limit: int = 100
    ) -> list[ProgramEventOut]:
        """The program's newest state changes, oldest first."""
        async with self._db.connect() as conn:
            found = await event_store.of_program(conn, machine_id, name, limit=limit)
            if not found and await store.get(conn, machine_id, name) is None:
                raise NotFound(f"no program {name!r} on machine {machine_id!r}")
        return [event_out(event) for event in found]

    async def history(
        self, machine_id: str, name: str, *, since: datetime, bucket_s: int
    ) -> ProgramHistory:
        """The program's CPU, memory and players from ``since`` on, in buckets of
        ``bucket_s`` seconds (see :mod:`.history`)."""
        async with self._db.connect() as conn:
            await _program(conn, machine_id, name)
            buckets = await sample_store.buckets(
                conn, machine_id, name, since=since, bucket_s=bucket_s
            )
        return history_out(machine_id, name, buckets, since=since, bucket_s=bucket_s)

    async def wait(self, machine_id: str, name: str, goal: Goal, *, timeout_s: float) -> ProgramOut:
        """The program once its agent reports ``goal`` reached, or gone past hope
        (its start failed), or when ``timeout_s`` is over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        with self._waiters.watch(machine_id, name) as news:
            while True:
                news.clear()  # before the read: news during it wakes the wait
                program = await self.get(machine_id, name)
                remaining = deadline - loop.time()
                if goal.settled(program) or remaining <= 0:
                    return program
                with suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), timeout=min(remaining, RECHECK_S))

    # --- the agent side ------------------------------------------------------------

    async def program_set(self, machine_id: str) -> ProgramSet:
        """The machine's programs as its agent runs them: secrets in clear, so for the
        agent's link only."""
        async with self._db.connect() as conn:
            return await self._load_set(conn, machine_id)

    async def stale_set(self, machine_id: str, revision: int | None) -> ProgramSet | None:
        """The machine's set if the agent's ``revision`` is not the server's (None: the
        agent holds none, which is current only while the machine never had programs)."""
        async with self._db.connect() as conn:
            current = await store.set_of(conn, machine_id)
            if current.revision == (revision or 0):
                return None
            return await self._load_set(conn, machine_id)

    async def apply_report(self, machine_id: str, report: ProgramReport) -> ProgramReportAck:
        """Store an agent's report (each state change once); the answer acknowledges
        the changes stored and carries the set when the agent's is stale."""
        applied = await self._reports.apply(machine_id, report)
        for event in applied.events:
            self._bus.publish(PROGRAM_EVENT_TOPIC, event.model_dump(mode="json"))
        for name in applied.touched:
            self._publish(machine_id, name)
        return applied.ack

    async def _load_set(self, conn: AsyncConnection, machine_id: str) -> ProgramSet:
        current = await store.set_of(conn, machine_id)
        found = await store.of_machines(conn, [machine_id])
        return ProgramSet(
            revision=current.revision,
            programs=[definitions.opened(program, self._sealer) for program in found],
        )

    async def _want(
        self, machine_id: str, name: str, desired: str, *, restart: bool, actor: Actor
    ) -> ProgramOut:
        action = "restart" if restart else "start" if desired == "running" else "stop"
        async with self._db.begin() as conn:
            program = await _program(conn, machine_id, name)
            if restart or program.desired != desired:
                revision = await store.bump_revision(conn, machine_id)
                await store.set_desired(
                    conn, program.id, desired, restart=restart, revision=revision, at=utcnow()
                )
            await record(conn, actor, f"program.{action}", target=f"{machine_id}/{name}")
        await self._changed(machine_id, name)
        return await self.get(machine_id, name)

    async def _changed(self, machine_id: str, name: str) -> None:
        """After a commit: watchers told, and the agent sent its new set."""
        self._publish(machine_id, name)
        await self._push.changed(machine_id)

    def _publish(self, machine_id: str, name: str) -> None:
        self._bus.publish(PROGRAM_TOPIC, {"machine": machine_id, "name": name})
        self._waiters.notify(machine_id, name)


async def _program(conn: AsyncConnection, machine_id: str, name: str) -> ProgramRecord:
    program = await store.get(conn, machine_id, name)
    if program is None:
        raise NotFound(f"no program {name!r} on machine {machine_id!r}")
    return program


def _no_set(machine_id: str) -> store.SetRecord:
    return store.SetRecord(machine_id, 0, None, 0, None)


# Free-form: the audit detail of a new program, its secrets left out.
def _audit(data: dict[str, object]) -> dict[str, object]:
    probe = data.get("probe")
    return {
        "preset": data.get("preset"),
        "command": data.get("command"),
        "secret_env": sorted(data.get("secret_env") or {}),  # type: ignore[call-overload]
        "probe": redact_probe_url(probe["url"]) if isinstance(probe, dict) else None,
        "autostart": data.get("autostart"),
    }

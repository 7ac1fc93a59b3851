"""Live progress of running runs, as agents report it (protocol version 2)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.protocol import RunProgress, RunState
from wcms.protocol.commands import REDACTED
from wcms.server.crypto import Sealer
from wcms.server.services.clock import utcnow
from wcms.server.settings import Settings
from wcms.server.store import commands as run_store
from wcms.server.store import progress as store


class RunProgressWriter:
    """Keeps each running run's output so far and how far it got, for the API."""

    def __init__(self, engine: AsyncEngine, settings: Settings, sealer: Sealer) -> None:
        self._engine = engine
        self._settings = settings
        self._sealer = sealer

    async def apply(self, machine_id: str, progress: RunProgress) -> bool:
        """Store a report from ``machine_id``; False when ignored (not its run, or the
        run is no longer live)."""
        async with self._engine.begin() as conn:
            run = await store.live_run(conn, progress.run_id, progress.attempt)
            if run is None or machine_id not in (run.machine_id, run.relay_id):
                return False
            hidden = secret_values(self._sealer, run.sealed_secrets)
            limit = self._settings.max_output_bytes
            values: dict[str, object] = {}
            if progress.stdout:
                values["stdout"] = splice(
                    run.stdout or "", progress.stdout_offset, mask(progress.stdout, hidden), limit
                )
            if progress.stderr:
                values["stderr"] = splice(
                    run.stderr or "", progress.stderr_offset, mask(progress.stderr, hidden), limit
                )
            if progress.percent is not None:
                values["progress"] = progress.percent
            if progress.note is not None:
                values["progress_note"] = mask(progress.note, hidden)
            if run.state == RunState.DELIVERED.value:
                # Output means it runs, even before its agent says so (a run reports
                # its start only if it does not end at once).
                now = utcnow()
                await run_store.transition(
                    conn,
                    [progress.run_id],
                    RunState.RUNNING,
                    at=now,
                    attempt=progress.attempt,
                    values={"started_at": now},
                )
            if values:
                await store.save(conn, progress.run_id, progress.attempt, values)
        return True


def splice(current: str, offset: int, chunk: str, limit: int) -> str:
    """``chunk`` put at ``offset`` of ``current``; a gap (a lost report) is marked."""
    gap = offset > len(current)
    text = current + "\n[...]\n" + chunk if gap else current[:offset] + chunk
    return text[:limit]


def secret_values(sealer: Sealer, sealed: str | None) -> list[str]:
    if not sealed:
        return []
    values: list[str] = []
    for value in sealer.unseal(sealed).values():
        values += [str(v) for v in value.values()] if isinstance(value, dict) else [str(value)]
    return [v for v in values if v]


def mask(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text

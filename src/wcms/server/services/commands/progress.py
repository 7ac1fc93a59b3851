"""Live progress of running runs, as agents report it (protocol version 2)."""

from __future__ import annotations

from wcms.protocol import RunProgress, RunState
from wcms.server.crypto import Sealer
from wcms.server.services.clock import utcnow
from wcms.server.services.commands.masking import mask, secret_values
from wcms.server.settings import Settings
from wcms.server.store import progress as store
from wcms.server.store import runs as run_store
from wcms.server.store.engine import Database
from wcms.server.store.progress import Progress
from wcms.server.store.runs import Move


class RunProgressWriter:
    """Keeps each running run's output so far and how far it got, for the API."""

    def __init__(self, db: Database, settings: Settings, sealer: Sealer) -> None:
        self._db = db
        self._settings = settings
        self._sealer = sealer

    async def apply(self, machine_id: str, progress: RunProgress) -> bool:
        """Store a report from ``machine_id``; False when ignored (not its run, or the
        run is no longer live)."""
        async with self._db.begin() as conn:
            run = await store.live_run(conn, progress.run_id, progress.attempt)
            if run is None or machine_id not in (run.machine_id, run.relay_id):
                return False
            hidden = secret_values(self._sealer, run.sealed_secrets)
            limit = self._settings.max_output_bytes
            update = Progress(
                stdout=splice(
                    run.stdout or "", progress.stdout_offset, mask(progress.stdout, hidden), limit
                )
                if progress.stdout
                else None,
                stderr=splice(
                    run.stderr or "", progress.stderr_offset, mask(progress.stderr, hidden), limit
                )
                if progress.stderr
                else None,
                percent=progress.percent,
                note=mask(progress.note, hidden) if progress.note is not None else None,
            )
            if run.state == RunState.DELIVERED.value:
                # Output means it runs, even before its agent says so (a run reports
                # its start only if it does not end at once).
                await run_store.transition(
                    conn,
                    [progress.run_id],
                    Move(RunState.RUNNING, utcnow(), attempt=progress.attempt),
                )
            await store.save(conn, progress.run_id, progress.attempt, update)
        return True


def splice(current: str, offset: int, chunk: str, limit: int) -> str:
    """``chunk`` put at ``offset`` of ``current``; a gap (a lost report) is marked."""
    gap = offset > len(current)
    text = current + "\n[...]\n" + chunk if gap else current[:offset] + chunk
    return text[:limit]

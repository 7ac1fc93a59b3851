"""The run journal: a durable record of every run this machine has seen.

It is what makes a command run at most once. An entry is committed (``synchronous =
FULL``) *before* the command starts, so a run the server delivers again after a crash
or a reconnect is recognised and never started twice; and its final result stays here
until the server confirms it stored it, so no result is lost either.

Entry states: ``started`` (the command was started), ``finished`` (it ended, or was
refused, with the final state and result stored), ``cancelled`` (cancelled before it
started; it never ran). A started entry also names the process the command runs in, as
soon as it exists, so that an agent restarted after a crash can find what is left of it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wcms.agent.errors import JournalError
from wcms.protocol import RunEnvelope, RunResult, RunState, RunUpdate

EntryState = Literal["started", "finished", "cancelled"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    command_id  INTEGER,
    type        TEXT,
    state       TEXT NOT NULL CHECK (state IN ('started', 'finished', 'cancelled')),
    final_state TEXT,
    result      TEXT,
    started_at  REAL,
    finished_at REAL,
    acked       INTEGER NOT NULL DEFAULT 0,
    timeout_s   REAL,
    pgid        INTEGER,
    pgid_started REAL,
    stopped_at  REAL,
    PRIMARY KEY (run_id, attempt)
);
CREATE TABLE IF NOT EXISTS cancellations (
    run_id INTEGER PRIMARY KEY,
    at     REAL NOT NULL
);
"""
# Columns of ``runs`` that journals written by older agents lack: added when opened.
# timeout_s: the run's time limit. pgid: its process (group), with pgid_started, when
# that process started (a pid alone may name another process later). stopped_at: when
# a graceful stop of the agent ended it.
_ADDED_COLUMNS = (
    ("timeout_s", "REAL"),
    ("pgid", "INTEGER"),
    ("pgid_started", "REAL"),
    ("stopped_at", "REAL"),
)


@dataclass(frozen=True)
class UnfinishedRun:
    """A run journalled as started that never finished: the agent died or was stopped
    while it ran."""

    run_id: int
    attempt: int
    type: str | None
    timeout_s: float | None
    # The process it ran in and when that started; None if it started none (or the
    # agent died before it could record it).
    pgid: int | None
    pgid_started: float | None
    # A graceful stop of the agent ended it (rather than a crash).
    stopped: bool


@dataclass(frozen=True)
class JournalEntry:
    run_id: int
    attempt: int
    state: EntryState
    final_state: RunState | None
    result: RunResult | None
    acked: bool

    def final_update(self) -> RunUpdate | None:
        """The run's final report, once it has one."""
        if self.final_state is None:
            return None
        return RunUpdate(
            run_id=self.run_id, attempt=self.attempt, state=self.final_state, result=self.result
        )


class Journal:
    """The journal in one SQLite file. Not thread-safe: the agent's event loop owns it.

    Each write is a small transaction on a local file, so it runs on the loop thread;
    that keeps "journalled before started" a plain sequence of statements.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the run journal {path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def _add_missing_columns(self) -> None:
        present = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        missing = [(name, kind) for name, kind in _ADDED_COLUMNS if name not in present]
        if not missing:
            return
        with self._transaction():
            for name, kind in missing:
                self._db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")

    def lookup(self, run_id: int, attempt: int) -> JournalEntry | None:
        with self._errors("read"):
            row = self._db.execute(
                "SELECT run_id, attempt, state, final_state, result, acked FROM runs"
                " WHERE run_id = ? AND attempt = ?",
                (run_id, attempt),
            ).fetchone()
        return None if row is None else _entry(row)

    def start(self, envelope: RunEnvelope) -> None:
        """Record that the run is about to start; durable when this returns."""
        with self._errors("write"):
            self._db.execute(
                "INSERT INTO runs (run_id, attempt, command_id, type, state, started_at,"
                " timeout_s) VALUES (?, ?, ?, ?, 'started', ?, ?)",
                (
                    envelope.run_id,
                    envelope.attempt,
                    envelope.command_id,
                    envelope.type,
                    self._clock(),
                    envelope.timeout_s,
                ),
            )

    def record_process(self, run_id: int, attempt: int, *, pgid: int, started: float) -> None:
        """Record the process a started run runs in (on POSIX the leader of its process
        group) and when it started; durable when this returns."""
        with self._errors("write"):
            self._db.execute(
                "UPDATE runs SET pgid = ?, pgid_started = ?"
                " WHERE run_id = ? AND attempt = ? AND state = 'started'",
                (pgid, started, run_id, attempt),
            )

    def mark_stopped(self, run_id: int, attempt: int) -> None:
        """Record that a graceful stop of the agent ended this started run."""
        with self._errors("write"):
            self._db.execute(
                "UPDATE runs SET stopped_at = ?"
                " WHERE run_id = ? AND attempt = ? AND state = 'started'",
                (self._clock(), run_id, attempt),
            )

    def finish(self, run_id: int, attempt: int, *, state: RunState, result: RunResult) -> None:
        """Record a started run's end and result."""
        with self._errors("write"):
            self._db.execute(
                "UPDATE runs SET state = 'finished', final_state = ?, result = ?,"
                " finished_at = ? WHERE run_id = ? AND attempt = ?",
                (state.value, result.model_dump_json(), self._clock(), run_id, attempt),
            )

    def record_unstarted(
        self,
        envelope: RunEnvelope,
        *,
        entry_state: EntryState,
        state: RunState,
        result: RunResult,
    ) -> None:
        """Record the final state of a run that was never started (expired, cancelled)."""
        now = self._clock()
        with self._errors("write"):
            self._db.execute(
                "INSERT INTO runs (run_id, attempt, command_id, type, state, final_state,"
                " result, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    envelope.run_id,
                    envelope.attempt,
                    envelope.command_id,
                    envelope.type,
                    entry_state,
                    state.value,
                    result.model_dump_json(),
                    now,
                ),
            )

    def request_cancel(self, run_id: int) -> None:
        """Remember that ``run_id`` is cancelled, so it never starts if it arrives later."""
        with self._errors("write"):
            self._db.execute(
                "INSERT OR IGNORE INTO cancellations (run_id, at) VALUES (?, ?)",
                (run_id, self._clock()),
            )

    def cancel_requested(self, run_id: int) -> bool:
        with self._errors("read"):
            row = self._db.execute(
                "SELECT 1 FROM cancellations WHERE run_id = ?", (run_id,)
            ).fetchone()
        return row is not None

    def unfinished(self) -> list[UnfinishedRun]:
        """Runs still ``started``: the previous agent process died or stopped while they
        ran. Oldest first."""
        with self._errors("read"):
            rows = self._db.execute(
                "SELECT run_id, attempt, type, timeout_s, pgid, pgid_started, stopped_at"
                " FROM runs WHERE state = 'started' ORDER BY started_at, run_id, attempt"
            ).fetchall()
        return [
            UnfinishedRun(
                run_id=run_id,
                attempt=attempt,
                type=type_,
                timeout_s=timeout_s,
                pgid=pgid,
                pgid_started=pgid_started,
                stopped=stopped_at is not None,
            )
            for run_id, attempt, type_, timeout_s, pgid, pgid_started, stopped_at in rows
        ]

    def unacked(self) -> list[RunUpdate]:
        """Final reports the server has not confirmed yet, oldest first."""
        with self._errors("read"):
            rows = self._db.execute(
                "SELECT run_id, attempt, state, final_state, result, acked FROM runs"
                " WHERE state != 'started' AND acked = 0"
                " ORDER BY finished_at, run_id"
            ).fetchall()
        updates = (_entry(row).final_update() for row in rows)
        return [update for update in updates if update is not None]

    def mark_acked(self, run_id: int, attempt: int) -> None:
        with self._errors("write"):
            self._db.execute(
                "UPDATE runs SET acked = 1 WHERE run_id = ? AND attempt = ?", (run_id, attempt)
            )

    def prune(self, older_than_s: float) -> int:
        """Forget acknowledged runs and cancellations older than ``older_than_s``."""
        cutoff = self._clock() - older_than_s
        with self._errors("write"), self._transaction():
            deleted = self._db.execute(
                "DELETE FROM runs WHERE acked = 1 AND finished_at < ?", (cutoff,)
            ).rowcount
            self._db.execute("DELETE FROM cancellations WHERE at < ?", (cutoff,))
        return deleted

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise JournalError(f"cannot {doing} the run journal {self.path}: {exc}") from exc


def _entry(row: tuple[int, int, EntryState, str | None, str | None, int]) -> JournalEntry:
    run_id, attempt, state, final_state, result, acked = row
    return JournalEntry(
        run_id=run_id,
        attempt=attempt,
        state=state,
        final_state=RunState(final_state) if final_state else None,
        result=RunResult.model_validate_json(result) if result else None,
        acked=bool(acked),
    )

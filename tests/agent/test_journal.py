"""The run journal on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wcms.agent.journal import Journal, UnfinishedRun
from wcms.protocol import RunResult, RunState

from .harness import make_envelope


def test_a_start_is_on_disk_when_start_returns(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.start(make_envelope("true", run_id=1))
    # Another connection (as a new process would) sees it at once.
    other = sqlite3.connect(tmp_path / "journal.db")
    assert other.execute("SELECT state FROM runs WHERE run_id = 1").fetchone() == ("started",)
    other.close()
    journal.close()


def test_it_uses_full_sync_and_wal(journal: Journal) -> None:
    db = sqlite3.connect(journal.path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_unfinished_runs_are_listed_with_their_process(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.start(make_envelope("sleep 9", run_id=1, timeout_s=60))
    journal.record_process(1, 1, pgid=4321, started=1_700_000_000.5)
    journal.start(make_envelope("true", run_id=2))
    journal.finish(2, 1, state=RunState.SUCCEEDED, result=RunResult(exit_code=0))
    journal.start(make_envelope("sleep 9", run_id=3))
    journal.mark_stopped(3, 1)
    journal.close()

    journal = Journal(tmp_path / "journal.db")
    assert journal.unfinished() == [
        UnfinishedRun(1, 1, "execute", 60.0, 4321, 1_700_000_000.5, stopped=False),
        UnfinishedRun(3, 1, "execute", 10.0, None, None, stopped=True),
    ]
    journal.finish(1, 1, state=RunState.FAILED, result=RunResult(error="x", interrupted=True))
    entry = journal.lookup(1, 1)
    assert entry is not None and entry.state == "finished"
    assert entry.result is not None and entry.result.interrupted
    assert [u.run_id for u in journal.unfinished()] == [3]
    journal.close()


def test_a_finished_run_keeps_no_new_process_or_stop(journal: Journal) -> None:
    journal.start(make_envelope("true", run_id=1))
    journal.finish(1, 1, state=RunState.SUCCEEDED, result=RunResult(exit_code=0))
    journal.record_process(1, 1, pgid=99, started=1.0)
    journal.mark_stopped(1, 1)
    db = sqlite3.connect(journal.path)
    row = db.execute("SELECT pgid, stopped_at FROM runs WHERE run_id = 1").fetchone()
    db.close()
    assert row == (None, None)


# The journal as the first agent release wrote it.
_OLD_SCHEMA = """
CREATE TABLE runs (
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
    PRIMARY KEY (run_id, attempt)
);
CREATE TABLE cancellations (
    run_id INTEGER PRIMARY KEY,
    at     REAL NOT NULL
);
INSERT INTO runs (run_id, attempt, command_id, type, state, started_at)
    VALUES (7, 1, 3, 'execute', 'started', 1700000000.0);
INSERT INTO runs (run_id, attempt, command_id, type, state, final_state, result,
    started_at, finished_at) VALUES (8, 1, 3, 'execute', 'finished', 'succeeded',
    '{"exit_code": 0, "stdout": "ok\\n"}', 1700000000.0, 1700000001.0);
"""


def test_a_journal_from_an_older_agent_opens_and_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    old = sqlite3.connect(path)
    old.executescript(_OLD_SCHEMA)
    old.close()

    journal = Journal(path)
    assert journal.unfinished() == [UnfinishedRun(7, 1, "execute", None, None, None, False)]
    [update] = journal.unacked()
    assert update.run_id == 8 and update.result is not None and update.result.stdout == "ok\n"
    journal.record_process(7, 1, pgid=123, started=1_700_000_000.25)
    journal.close()

    def columns(db_path: Path) -> list[str]:
        db = sqlite3.connect(db_path)
        names = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
        db.close()
        return names

    fresh = tmp_path / "fresh.db"
    Journal(fresh).close()
    assert sorted(columns(path)) == sorted(columns(fresh))
    again = Journal(path)  # opening it again changes nothing
    assert again.unfinished()[0].pgid == 123
    again.close()


def test_acked_entries_are_pruned_after_the_retention(tmp_path: Path) -> None:
    now = [1_000_000.0]
    journal = Journal(tmp_path / "journal.db", clock=lambda: now[0])
    for run_id in (1, 2):
        journal.start(make_envelope("true", run_id=run_id))
        journal.finish(run_id, 1, state=RunState.SUCCEEDED, result=RunResult(exit_code=0))
    journal.mark_acked(1, 1)
    journal.request_cancel(3)
    now[0] += 8 * 24 * 3600
    assert journal.prune(7 * 24 * 3600) == 1
    assert journal.lookup(1, 1) is None
    assert journal.lookup(2, 1) is not None  # never acknowledged: kept
    assert not journal.cancel_requested(3)
    journal.close()


def test_final_update_round_trips_the_result(journal: Journal) -> None:
    journal.start(make_envelope("true", run_id=9, attempt=2))
    result = RunResult(exit_code=1, stdout="out", stderr="err", stdout_truncated=True)
    journal.finish(9, 2, state=RunState.FAILED, result=result)
    entry = journal.lookup(9, 2)
    assert entry is not None
    update = entry.final_update()
    assert update is not None
    assert (update.run_id, update.attempt, update.state) == (9, 2, RunState.FAILED)
    assert update.result == result

"""The run journal on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wcms.agent.journal import Journal
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


def test_unfinished_runs_become_interrupted_failures(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.start(make_envelope("sleep 9", run_id=1))
    journal.start(make_envelope("true", run_id=2))
    journal.finish(2, 1, state=RunState.SUCCEEDED, result=RunResult(exit_code=0))
    journal.close()

    journal = Journal(tmp_path / "journal.db")
    updates = journal.interrupt_unfinished(RunResult(error="interrupted"))
    assert [(u.run_id, u.state) for u in updates] == [(1, RunState.FAILED)]
    entry = journal.lookup(1, 1)
    assert entry is not None and entry.state == "finished"
    assert entry.final_state is RunState.FAILED
    assert {u.run_id for u in journal.unacked()} == {1, 2}
    journal.close()


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

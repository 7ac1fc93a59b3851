"""``processes`` (list) and ``kill`` (by pid or name), through psutil on every platform."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import psutil

from wcms.agent.actions.base import Action, ActionContext, ActionOutcome, payload_of
from wcms.agent.errors import ActionFailed
from wcms.protocol import RunEnvelope
from wcms.protocol.actions import KillPayload, ProcessesPayload

# CPU use is measured over this window.
CPU_SAMPLE_S = 0.5
# How long killed processes get to exit before the result says they did not.
KILL_WAIT_S = 3.0
_FIELDS = ["pid", "name", "username", "memory_info"]


class ProcessesAction(Action):
    """Lists processes with name, pid, user, CPU % and resident memory; the text table
    is in stdout, the rows in ``data.processes``."""

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, ProcessesPayload)
        rows = await asyncio.to_thread(snapshot, payload.name)
        key = {"cpu": "cpu", "rss": "rss", "pid": "pid", "name": "name"}[payload.sort]
        rows.sort(key=lambda row: row[key], reverse=payload.sort in ("cpu", "rss"))
        shown = rows[: payload.limit]
        lines = [f"{'PID':>7} {'CPU%':>6} {'RSS MB':>8}  {'USER':<16} NAME"]
        lines += [
            f"{r['pid']:>7} {r['cpu']:>6.1f} {r['rss'] / 2**20:>8.1f}  {r['user'] or '':<16} "
            f"{r['name']}"
            for r in shown
        ]
        lines.append(f"{len(shown)} of {len(rows)} processes")
        return ActionOutcome.succeeded(
            "\n".join(lines), data={"processes": shown, "total": len(rows)}
        )


def snapshot(name: str | None) -> list[dict[str, Any]]:
    """Every process (whose name contains ``name``), CPU % measured over a short window."""
    processes = []
    for process in psutil.process_iter(_FIELDS):
        if name and name.lower() not in (process.info["name"] or "").lower():
            continue
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
            processes.append(process)
    time.sleep(CPU_SAMPLE_S)
    rows = []
    for process in processes:
        try:
            cpu = process.cpu_percent(None)
        except psutil.Error:
            continue
        memory = process.info["memory_info"]
        rows.append(
            {
                "pid": process.pid,
                "name": process.info["name"] or "",
                "user": process.info["username"],
                "cpu": round(cpu, 1),
                "rss": memory.rss if memory else 0,
            }
        )
    return rows


class KillAction(Action):
    """Ends processes: gracefully (SIGTERM / TerminateProcess), or at once with
    ``force``. Never the agent itself or the init process."""

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, KillPayload)
        targets = await asyncio.to_thread(find_targets, payload)
        killed, alive = await asyncio.to_thread(_end, targets, force=payload.force)
        if alive:
            names = ", ".join(f"{p.pid}" for p in alive)
            raise ActionFailed(f"still running after {KILL_WAIT_S:g} s: {names} (try force=true)")
        pids = [process.pid for process in killed]
        how = "killed" if payload.force else "terminated"
        return ActionOutcome.succeeded(
            f"{how} {len(pids)} process(es): {', '.join(map(str, pids))}", data={"pids": pids}
        )


def find_targets(payload: KillPayload) -> list[psutil.Process]:
    protected = {0, 1, os.getpid(), os.getppid()}
    if payload.pid is not None:
        if payload.pid in protected:
            raise ActionFailed(f"refused: pid {payload.pid} is the agent or the system's init")
        try:
            return [psutil.Process(payload.pid)]
        except psutil.NoSuchProcess:
            raise ActionFailed(f"no process with pid {payload.pid}") from None
    found = [
        process
        for process in psutil.process_iter(["name"])
        if process.info["name"] == payload.name and process.pid not in protected
    ]
    if not found:
        raise ActionFailed(f"no process named {payload.name!r}")
    return found


def _end(
    targets: list[psutil.Process], *, force: bool
) -> tuple[list[psutil.Process], list[psutil.Process]]:
    for process in targets:
        try:
            process.kill() if force else process.terminate()
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied as exc:
            raise ActionFailed(f"not allowed to end process {process.pid}") from exc
    gone, alive = psutil.wait_procs(targets, timeout=KILL_WAIT_S)
    # A dead process whose parent has not reaped it yet is a zombie: it is gone.
    zombies = [process for process in alive if _is_zombie(process)]
    return [*gone, *zombies], [process for process in alive if process not in zombies]


def _is_zombie(process: psutil.Process) -> bool:
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True

"""What a program costs the machine, and how often the supervisor looks.

A game server is a tree (a launcher script, the server, its helpers), so its CPU,
memory and threads are summed over the tree. Measuring reads ``/proc`` for every
member: it is done at most every ``MEASURE_S`` and in a worker thread, and the
supervisor's watch slows down while the machine's CPU is busy, which is exactly when
a game host can least spare it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

MEASURE_S = 5.0


@dataclass(frozen=True)
class Usage:
    cpu_percent: float
    rss_bytes: int
    threads: int


@dataclass(frozen=True)
class Pace:
    """How often the supervisor looks at its programs."""

    watch_s: float = 2.0
    # While the machine's CPU is above ``busy_percent``.
    busy_watch_s: float = 10.0
    busy_percent: float = 80.0
    # While a program starts with a ready line, its console is read this often.
    scan_s: float = 0.1
    measure_s: float = MEASURE_S

    def interval(self, machine_cpu_percent: float) -> float:
        if machine_cpu_percent > self.busy_percent:
            return self.busy_watch_s
        return self.watch_s


class TreeMeter:
    """Measures one program's tree. CPU percentages compare with the previous
    measure, so the psutil objects are kept from one to the next."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._known: dict[int, psutil.Process] = {}

    def measure(self) -> Usage | None:
        """The tree's usage now; None once its leader is gone. Blocking: run it in a
        thread."""
        try:
            root = self._known.get(self._pid) or psutil.Process(self._pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        known: dict[int, psutil.Process] = {}
        cpu = 0.0
        rss = 0
        threads = 0
        for found in tree:
            process = self._known.get(found.pid, found)
            try:
                with process.oneshot():
                    cpu += process.cpu_percent(None)
                    rss += process.memory_info().rss
                    threads += process.num_threads()
            except psutil.Error:
                continue
            known[process.pid] = process
        self._known = known
        return Usage(cpu_percent=cpu, rss_bytes=rss, threads=threads)


def machine_cpu_percent() -> float:
    """The machine's CPU use since the last call (non-blocking)."""
    return float(psutil.cpu_percent(None))

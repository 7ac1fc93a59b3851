"""The simulated fleet: worker processes, each running a slice of the agents."""

from __future__ import annotations

import contextlib
import multiprocessing
from typing import Any

from benchmarks.fleet import worker


class Swarm:
    """Asks every worker the same thing at once and gathers their answers."""

    def __init__(self, url: str, agents: int, workers: int, *, prefix: str = "sim") -> None:
        self.ids = [f"{prefix}-{n:05d}" for n in range(agents)]
        ctx = multiprocessing.get_context("spawn")
        self._pipes = []
        self._procs = []
        for w in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker.main, args=(child, url, self.ids[w::workers]), daemon=True
            )
            proc.start()
            self._pipes.append(parent)
            self._procs.append(proc)

    def ask(self, op: str, **fields: Any) -> list[dict[str, Any]]:
        for pipe in self._pipes:
            pipe.send({"op": op, **fields})
        answers = [pipe.recv() for pipe in self._pipes]
        errors = [a["error"] for a in answers if not a.get("ok")]
        if errors:
            raise RuntimeError(f"{op} failed in a worker: {errors[0]}")
        return answers

    def stats(self) -> dict[str, Any]:
        """Counters summed over workers; receive times merged per command."""
        total: dict[str, Any] = {"received": {}, "doubled": {}, "cpu_s": 0.0}
        for answer in self.ask("stats"):
            for key, value in answer.items():
                if key == "received":
                    for command_id, times in value.items():
                        total["received"].setdefault(int(command_id), []).extend(times)
                elif key == "doubled":
                    for command_id, extra in value.items():
                        total["doubled"][int(command_id)] = (
                            total["doubled"].get(int(command_id), 0) + extra
                        )
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
        return total

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, EOFError, BrokenPipeError):
            self.ask("goodbye")
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()

"""Fleet simulator: drive a real `wcms server` with many simulated agents.

    python -m benchmarks.fleet SCENARIO [--agents N] [--database sqlite|postgresql] ...

Scenarios: connect, heartbeats, command, broadcast, reconnect, footprint, or all (every
scenario on one server, in that order). Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.fleet.scenarios import SCENARIOS, Bench, Options

# What each figure is held to (the performance bar); reported, never asserted.
TARGETS: dict[str, tuple[str, float]] = {
    "connect_storm_s": ("<=", 20.0),
    "server_rss_per_agent_kb": ("<=", 64.0),
    "heartbeats_persisted_per_s": (">=", 10000.0),
    "command_to_agent_p50_ms": ("<=", 5.0),
    "command_to_agent_p99_ms": ("<=", 25.0),
    "broadcast_all_stored_s": ("<=", 2.0),
    "broadcast_missing": ("<=", 0),
    "broadcast_doubled": ("<=", 0),
    "reconnect_all_back_after_start_s": ("<=", 30.0),
    "reconnect_command_lost": ("<=", 0),
    "reconnect_command_doubled": ("<=", 0),
    "agent_rss_mb": ("<=", 40.0),
    "agent_cpu_percent": ("<=", 0.5),
}


def parse_args(argv: list[str] | None = None) -> tuple[str, Options, int, Path | None]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--agents", type=int, default=1000, help="simulated agents (default 1000)")
    parser.add_argument("--workers", type=int, default=4, help="simulator processes (default 4)")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="postgresql uses a throwaway database on 127.0.0.1:5432",
    )
    parser.add_argument("--port", type=int, default=18900, help="server port (below 32768)")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.75,
        help="heartbeat interval of the simulated agents, seconds (default 0.75: 10,000 "
        "agents offer a third more than the 10,000/s bar, so the figure shows what the "
        "server keeps up with, not what was offered)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=20.0,
        help="heartbeat measuring window, seconds (default 20)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=100,
        help="commands sent one by one in the command scenario (default 100)",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=60.0,
        help="seconds the real agent idles in the footprint scenario (default 60)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the scenario this many times on fresh servers; report medians",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the figures")
    args = parser.parse_args(argv)
    if not 0 < args.port < 32768:
        parser.error("--port must be below 32768")
    if args.agents < 0 or args.workers < 1:
        parser.error("--agents must be >= 0 and --workers >= 1")
    options = Options(
        agents=args.agents,
        workers=min(args.workers, max(args.agents, 1)),
        database=args.database,
        port=args.port,
        interval=args.interval,
        duration=args.duration,
        samples=args.samples,
        idle=args.idle,
    )
    return args.scenario, options, args.repeat, args.out


def run_once(scenario: str, options: Options) -> dict[str, Any]:
    names = list(SCENARIOS) if scenario == "all" else [scenario]
    if names == ["footprint"]:
        options.agents = 0
    bench = Bench.open(options)
    try:
        for name in names:
            print(f"... {name} ({options.agents} agents, {options.database})", file=sys.stderr)
            bench.figures.update(SCENARIOS[name](bench))
    finally:
        bench.close()
    return bench.figures


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs if key in run]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(values):
            merged[key] = statistics.median(numbers)
        else:
            merged[key] = values[0] if all(v == values[0] for v in values) else values
    return merged


def verdict(key: str, value: Any) -> str:
    target = TARGETS.get(key)
    if target is None or not isinstance(value, int | float) or math.isnan(value):
        return ""
    op, bound = target
    met = value <= bound if op == "<=" else value >= bound
    return f"{op} {bound:g}  {'met' if met else 'MISSED'}"


def show(figures: dict[str, Any]) -> None:
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown:>14}  {verdict(key, value)}")


def main(argv: list[str] | None = None) -> int:
    scenario, options, repeat, out = parse_args(argv)
    out = out or Path("benchmarks/results") / f"{scenario}-{options.database}-{options.agents}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for n in range(max(1, repeat)):
        runs.append(run_once(scenario, Options(**vars(options))))
        if repeat > 1:
            print(f"--- run {n + 1} of {repeat}")
            show(runs[-1])
        # Written after every run, so a run that fails later loses no figures.
        write(out, scenario, options, runs)
    if repeat > 1:
        print(f"--- median of {len(runs)} runs")
    show(median_of(runs))
    print(f"figures written to {out}", file=sys.stderr)
    return 0


def write(out: Path, scenario: str, options: Options, runs: list[dict[str, Any]]) -> None:
    record = {
        "scenario": scenario,
        "options": vars(options),
        "repeat": len(runs),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "median": median_of(runs),
        "runs": runs,
    }
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())

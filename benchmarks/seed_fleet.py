"""Seed a WCMS database with a fleet: rooms with seat maps, machines with inventory and
status, status history for charts, presence events. Used by the dashboard benchmark and
the screenshot script; not needed for anything else.

    python benchmarks/seed_fleet.py DATA_DIR [--machines 2000] [--rooms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from wcms.server.store.engine import create_engine
from wcms.server.store.migrate import upgrade
from wcms.server.store.tables import (
    machine_status,
    machine_tags,
    machines,
    presence_events,
    rooms,
    status_history,
)

GIB = 1024**3
USERS = ["kim.minji", "lee.jun", "park.seoyeon", "choi.woo", "jung.hana", "student"]


def fleet(count: int, room_count: int, *, cols: int = 8, seed: int = 7) -> dict[str, list]:
    """Rows for ``count`` machines spread over ``room_count`` rooms of ``cols`` columns."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    per_room = -(-count // room_count)
    rows = -(-per_room // cols)
    out: dict[str, list[dict[str, Any]]] = {"rooms": [], "machines": [], "status": [], "tags": []}
    for r in range(room_count):
        out["rooms"].append({"name": room_name(r), "rows": rows, "cols": cols, "created_at": now})
    for n in range(count):
        room, index = divmod(n, per_room)
        online = rng.random() < 0.8
        machine_id = f"{room_name(room).lower()}-pc{index + 1:02d}"
        out["machines"].append(
            {
                "id": machine_id,
                "hostname": machine_id.upper(),
                "room": room_name(room),
                "seat": f"{index // cols + 1}-{index % cols + 1}" if index % 17 != 16 else None,
                "os": "Windows 11 Education 23H2" if n % 5 else "Ubuntu 24.04 LTS",
                "agent_version": "0.1.0",
                "ip": f"10.{room}.{index // 250}.{index % 250 + 2}",
                "inventory": inventory(machine_id, n),
                "status": "online" if online else "offline",
                "status_reason": "connected" if online else "shutdown",
                "status_changed_at": now - timedelta(minutes=rng.randint(1, 600)),
                "last_seen_at": now - timedelta(seconds=rng.randint(0, 30)),
                "transport": "ws" if online else None,
                "created_at": now - timedelta(days=30),
                "updated_at": now,
            }
        )
        if online:
            out["status"].append(
                {"machine_id": machine_id, "at": now, "report": report(rng, online=True)}
            )
        out["tags"].append({"machine_id": machine_id, "tag": "lab" if n % 3 else "teacher"})
    return out


def room_name(index: int) -> str:
    """A101, A102, ... B101, ...: a building letter and a room number."""
    return f"{'ABCDEFGH'[index // 10 % 8]}{101 + index % 10}" + ("" if index < 80 else f"-{index}")


def inventory(machine_id: str, n: int) -> dict[str, Any]:
    return {
        "hostname": machine_id.upper(),
        "os_name": "Windows",
        "os_version": "10.0.22631",
        "os_pretty": "Windows 11 Education 23H2",
        "arch": "AMD64",
        "cpu_model": "Intel(R) Core(TM) i5-12500",
        "cpu_cores": 6,
        "cpu_threads": 12,
        "ram_total": 16 * GIB,
        "disks": [{"mount": "C:\\", "fstype": "NTFS", "total": 512 * GIB}],
        "macs": [f"02:00:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"],
        "ips": [],
        "agent_version": "0.1.0",
    }


def report(rng: random.Random, *, online: bool) -> dict[str, Any]:
    ram = rng.uniform(25, 85)
    return {
        "cpu_percent": round(rng.uniform(1, 95) if online else 0, 1),
        "ram_used": int(16 * GIB * ram / 100),
        "ram_total": 16 * GIB,
        "ram_percent": round(ram, 1),
        "disks": [{"mount": "C:\\", "total": 512 * GIB, "used": 300 * GIB, "percent": 58.6}],
        "users": [rng.choice(USERS)] if rng.random() < 0.7 else [],
        "uptime_s": rng.uniform(600, 40000),
        "process_count": rng.randint(120, 260),
    }


def history(machine_id: str, *, days: float, step_s: int, seed: int = 3) -> list[dict[str, Any]]:
    """Status history for one machine: a daily rhythm with noise, every ``step_s``."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    points = int(days * 86400 / step_s)
    out = []
    for i in range(points):
        at = now - timedelta(seconds=(points - i) * step_s)
        busy = 0.5 + 0.5 * math.sin((at.hour - 9) / 24 * 2 * math.pi)
        cpu = max(0.5, min(99, 10 + 60 * busy + rng.gauss(0, 8)))
        ram = max(10, min(95, 35 + 30 * busy + rng.gauss(0, 3)))
        disk = 55 + 10 * i / points
        out.append(
            {
                "machine_id": machine_id,
                "at": at,
                "cpu_percent": round(cpu, 1),
                "ram_used": int(16 * GIB * ram / 100),
                "ram_percent": round(ram, 1),
                "disks": [{"mount": "C:\\", "total": 512 * GIB, "used": 0, "percent": disk}],
                "users": [],
                "uptime_s": 1000.0,
                "process_count": 180,
            }
        )
    return out


async def seed(data_dir: Path, *, count: int, room_count: int, history_for: int = 3) -> list[str]:
    """Migrate a fresh SQLite database in ``data_dir`` and fill it; returns machine ids."""
    engine = create_engine(f"sqlite+aiosqlite:///{(data_dir / 'wcms.db').resolve()}")
    await upgrade(engine)
    rows = fleet(count, room_count)
    ids = [m["id"] for m in rows["machines"]]
    async with engine.begin() as conn:
        await conn.execute(insert(rooms), rows["rooms"])
        await conn.execute(insert(machines), rows["machines"])
        await conn.execute(insert(machine_status), rows["status"])
        await conn.execute(insert(machine_tags), rows["tags"])
        events = [
            {
                "machine_id": m["id"],
                "status": m["status"],
                "reason": m["status_reason"],
                "at": m["status_changed_at"],
            }
            for m in rows["machines"]
        ]
        await conn.execute(insert(presence_events), events)
        for machine_id in ids[:history_for]:
            await conn.execute(insert(status_history), history(machine_id, days=7, step_s=60))
    await engine.dispose()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--machines", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=50)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    ids = asyncio.run(seed(args.data_dir, count=args.machines, room_count=args.rooms))
    print(f"seeded {len(ids)} machines into {args.data_dir}")


if __name__ == "__main__":
    main()

"""The in-process event bus and the coalescing status feed."""

from __future__ import annotations

import asyncio
import time

from wcms.protocol import DiskUsage, StatusReport
from wcms.server.bus import InProcessBus, StatusFeed
from wcms.server.bus.base import RESYNC

REPORT = StatusReport(
    cpu_percent=12.5,
    ram_used=1,
    ram_total=2,
    ram_percent=50,
    disks=[DiskUsage(mount="/", total=10, used=7, percent=70.0)],
    users=["kim"],
)


def run(coro):
    return asyncio.run(coro)


def test_a_subscriber_receives_only_its_topics():
    async def scenario():
        bus = InProcessBus()
        with bus.subscribe(["presence"]) as sub:
            bus.publish("command", {"id": 1})
            bus.publish("presence", {"id": "lab-01", "status": "online"})
            event = await sub.get(timeout=1)
            assert event is not None
            assert (event.topic, event.data["id"]) == ("presence", "lab-01")
            assert await sub.get(timeout=0.01) is None

    run(scenario())


def test_wants_is_false_without_subscribers_and_after_close():
    async def scenario():
        bus = InProcessBus()
        assert not bus.wants("status")
        sub = bus.subscribe(["status"])
        assert bus.wants("status")
        sub.close()
        assert not bus.wants("status")
        assert bus.subscriber_count() == 0

    run(scenario())


def test_a_slow_subscriber_is_told_to_resync_and_never_blocks_the_publisher():
    async def scenario():
        bus = InProcessBus()
        slow = bus.subscribe(["command"], maxsize=10)
        fast = bus.subscribe(["command"], maxsize=10_000)
        started = time.perf_counter()
        for n in range(5_000):
            bus.publish("command", {"id": n})
        assert time.perf_counter() - started < 1.0
        event = await slow.get(timeout=1)
        assert event is not None and event.topic == RESYNC
        assert slow.dropped > 0
        assert fast.pending() == 5_000
        # After the resync the slow subscriber gets new events again.
        bus.publish("command", {"id": "next"})
        event = await slow.get(timeout=1)
        assert event is not None and event.data == {"id": "next"}

    run(scenario())


def test_the_status_feed_keeps_nothing_when_no_one_watches():
    async def scenario():
        bus = InProcessBus()
        feed = StatusFeed(bus)
        for _ in range(1000):
            feed.offer("lab-01", REPORT)
        assert feed._latest == {}

    run(scenario())


def test_the_status_feed_publishes_one_coalesced_event_per_interval():
    async def scenario():
        bus = InProcessBus()
        feed = StatusFeed(bus, interval=0.05)
        with bus.subscribe(["status"]) as sub:
            task = asyncio.create_task(feed.run())
            for n in range(100):
                feed.offer(f"lab-{n % 3}", REPORT)
            event = await sub.get(timeout=1)
            feed.stop()
            await task
        assert event is not None
        machines = event.data["machines"]
        assert sorted(machines) == ["lab-0", "lab-1", "lab-2"]
        assert machines["lab-0"] == {
            "cpu": 12.5,
            "ram": 50.0,
            "disk": 70.0,
            "users": ["kim"],
            "uptime_s": 0.0,
            "processes": 0,
        }
        assert sub.pending() == 0

    run(scenario())


def test_offering_a_heartbeat_with_no_watcher_costs_next_to_nothing():
    async def scenario():
        feed = StatusFeed(InProcessBus())
        started = time.perf_counter()
        for _ in range(100_000):
            feed.offer("lab-01", REPORT)
        per_call = (time.perf_counter() - started) / 100_000
        assert per_call < 5e-6, f"{per_call * 1e6:.2f} µs per heartbeat"

    run(scenario())

"""Live events as a Server-Sent Events stream, for the dashboard and for scripts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from wcms.server.api.deps import Admin, CoreDep
from wcms.server.bus import Event, Subscription
from wcms.server.errors import BadRequest

router = APIRouter(prefix="/api", tags=["events"])

TOPICS = ("presence", "status", "command", "machine", "layout", "program", "alert")
KEEPALIVE_S = 15.0


@router.get("/events")
async def events(
    core: CoreDep,
    _: Admin,
    topics: Annotated[str, Query(max_length=200, description="Comma-separated")] = ",".join(TOPICS),
) -> StreamingResponse:
    """``text/event-stream`` of live changes: ``presence`` (online/offline with reason),
    ``status`` (newest CPU/RAM/disk per machine, at most once a second), ``command``
    (a command's runs changed), ``machine`` (edited or deleted), ``layout`` (rooms and
    seats), ``program`` (a program's state or definition changed: ``machine``, ``name``),
    ``alert`` (alerts changed state or were acknowledged: ``firing``, the count now).
    ``resync`` means events were lost: reload what you show."""
    wanted = [t.strip() for t in topics.split(",") if t.strip()]
    unknown = sorted(set(wanted) - set(TOPICS))
    if unknown or not wanted:
        raise BadRequest(
            f"unknown topic {unknown[0]!r} (known: {', '.join(TOPICS)})"
            if unknown
            else "name at least one topic",
            field="topics",
        )
    subscription = core.bus.subscribe(wanted)
    return StreamingResponse(
        _stream(subscription),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(subscription: Subscription) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 2000\n\n" + _frame("hello", {})
        while not subscription.closed:
            event = await subscription.get(timeout=KEEPALIVE_S)
            if event is None:
                yield b": keepalive\n\n"
                continue
            for item in coalesce([event, *subscription.drain()]):
                yield _frame(item.topic, item.data)
    finally:
        subscription.close()


def coalesce(events: Sequence[Event]) -> list[Event]:
    """Merge what piled up: one event per command id, one merged status event."""
    out: list[Event] = []
    seen_commands: set[Any] = set()
    status: dict[str, Any] | None = None
    for event in events:
        if event.topic == "command":
            if event.data.get("id") in seen_commands:
                continue
            seen_commands.add(event.data.get("id"))
        elif event.topic == "status":
            if status is None:
                status = {"at": event.data.get("at"), "machines": {}}
                out.append(Event("status", status))
            status["machines"].update(event.data.get("machines", {}))
            status["at"] = event.data.get("at")
            continue
        out.append(event)
    return out


def _frame(topic: str, data: dict[str, Any]) -> bytes:
    return b"event: " + topic.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

"""Dashboard pages for alerts: the alerts firing now, one alert with its subjects and
messages, acknowledgement, the navigation's count and the delivery log.

The list and the count refresh on the event stream's ``alert`` topic, which the engine
publishes when an alert changes state or is acknowledged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from wcms.protocol.alerts import (
    AlertOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryState,
)
from wcms.protocol.bounds import INT64_MAX
from wcms.server.api.deps import AlertEngineDep, OutboxDep
from wcms.server.services.alerts import AlertEngine
from wcms.server.web.deps import CheckedForm, WebActor, WebUser
from wcms.server.web.render import render

router = APIRouter(include_in_schema=False)

AlertId = Annotated[int, Path(ge=1, le=INT64_MAX)]
DeliveryId = Annotated[str, Path(min_length=1, max_length=36)]

# The list's filter: the engine's states, and two it shows by looking at each alert.
STATES = ("active", "firing", "pending", "resolved", "acknowledged", "silenced")
LISTED = 200
RESOLVED_SHOWN = 20
# An alert's page lists this many of its newest messages, and reads the lines of some.
DELIVERIES_LISTED = 100
MESSAGES_READ = 10


# --- alerts ------------------------------------------------------------------------


@router.get("/alerts")
async def alerts_page(
    request: Request, engine: AlertEngineDep, user: WebUser, state: str | None = None
) -> Response:
    context = await _alert_lists(engine, state)
    return render(request, "alerts.html", title="Alerts", user=user, **context)


@router.get("/alerts/table")
async def alerts_table(
    request: Request, engine: AlertEngineDep, _: WebUser, state: str | None = None
) -> Response:
    """The alerts page's tables, as they refresh."""
    return render(request, "alerts_table.html", **await _alert_lists(engine, state))


@router.get("/alerts/count")
async def alerts_count(request: Request, engine: AlertEngineDep, _: WebUser) -> Response:
    """The navigation's count of firing alerts nobody has acknowledged, as it refreshes."""
    count = await engine.count_unacknowledged()
    return render(request, "alerts_count.html", alert_count=count)


async def _alert_lists(engine: AlertEngine, state: str | None) -> dict[str, Any]:
    chosen = state if state in STATES else ""
    if not chosen:
        active = await engine.list_alerts(state="active", limit=LISTED)
        resolved = await engine.list_alerts(state="resolved", limit=RESOLVED_SHOWN)
        unacked = sum(1 for a in active if a.state == "firing" and a.acked_at is None)
        return {"alerts": active, "resolved": resolved, "state": "", "alert_count": unacked}
    asked = {"acknowledged": None, "silenced": "active"}.get(chosen, chosen)
    found = await engine.list_alerts(state=asked, limit=LISTED)
    if chosen == "acknowledged":
        found = [a for a in found if a.acked_at is not None]
    elif chosen == "silenced":
        found = [a for a in found if a.silenced]
    return {"alerts": found, "resolved": [], "state": chosen}


# --- the delivery log --------------------------------------------------------------


@router.get("/alerts/deliveries")
async def deliveries_page(
    request: Request, outbox: OutboxDep, user: WebUser, state: str | None = None
) -> Response:
    """The newest deliveries, of one state when chosen (an unknown one shows all)."""
    chosen = state if state in {s.value for s in DeliveryState} else ""
    found = await outbox.list_deliveries(
        state=DeliveryState(chosen) if chosen else None, limit=LISTED
    )
    return render(
        request,
        "alerts_deliveries.html",
        title="Delivery log",
        user=user,
        deliveries=found,
        state=chosen,
        states=[s.value for s in DeliveryState],
    )


@router.post("/alerts/deliveries/{delivery_id}/retry")
async def retry_delivery(
    delivery_id: DeliveryId, outbox: OutboxDep, actor: WebActor, _: CheckedForm
) -> Response:
    await outbox.retry(delivery_id, actor=actor)
    return RedirectResponse("/alerts/deliveries", status_code=303)


# --- one alert (after the fixed paths: /alerts/{id} would take them) ---------------


@router.get("/alerts/{alert_id}")
async def alert_page(
    alert_id: AlertId, request: Request, engine: AlertEngineDep, outbox: OutboxDep, user: WebUser
) -> Response:
    """An alert's facts, its subjects with the line its messages said of each, and its
    timeline: started, each message queued, acknowledged, resolved."""
    alert = await engine.get_alert(alert_id)
    told = await outbox.list_deliveries(alert_id=alert_id, limit=DELIVERIES_LISTED)
    messages = [await outbox.get_delivery(d.id) for d in told[:MESSAGES_READ]]
    return render(
        request,
        "alerts_detail.html",
        title="Alert",
        user=user,
        a=alert,
        lines=_lines(messages),
        messages=messages,
        timeline=_timeline(alert, told),
    )


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(
    alert_id: AlertId, engine: AlertEngineDep, actor: WebActor, form: CheckedForm
) -> Response:
    await engine.acknowledge(alert_id, actor=actor)
    back = f"/alerts/{alert_id}" if form.get("back") == "alert" else "/alerts"
    return RedirectResponse(back, status_code=303)


def _lines(messages: list[DeliveryDetail]) -> dict[str, str]:
    """What the newest message naming each subject said of it: a message names its
    subjects first, in the order of its first lines."""
    found: dict[str, str] = {}
    for delivery in messages:
        for subject, line in zip(delivery.message.subjects, delivery.message.lines, strict=False):
            found.setdefault(subject, line)
    return found


def _timeline(alert: AlertOut, told: list[DeliveryOut]) -> list[tuple[datetime, str, str]]:
    """(when, what, detail), oldest first."""
    events = [(alert.started_at, "Started", alert.summary)]
    events += [(d.created_at, "Message", f"{d.channel}: {d.title}") for d in told]
    if alert.acked_at is not None:
        events.append((alert.acked_at, "Acknowledged", alert.acked_by or ""))
    if alert.resolved_at is not None:
        events.append((alert.resolved_at, "Resolved", ""))
    return sorted(events, key=lambda event: event[0])

"""The alert outbox on both databases, over real sockets to a real receiver: claims are
exclusive between replicas, a dead replica's lease is taken over, a receiver that is
down gets every message once and in order when it is back, rate limits and retries,
deadlines and dead letters, disabled channels, stopping, and the delivery log API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient

from tests.alert_receiver import HttpReceiver, Received
from tests.procs import wait_for
from wcms import __version__
from wcms.protocol.alerts import OUTBOX_TOPIC, AlertMessage, DeliveryKind, Severity
from wcms.server.app import create_app
from wcms.server.bus import InProcessBus
from wcms.server.crypto import Sealer
from wcms.server.services.alerts import Outbox
from wcms.server.services.alerts.outbox import backoff
from wcms.server.services.audit import Actor
from wcms.server.services.clock import utcnow
from wcms.server.settings import Settings
from wcms.server.store import alert_config as config_store
from wcms.server.store import deliveries as store
from wcms.server.store.alert_config import NewChannel
from wcms.server.store.deliveries import Attempt, DeliveryRecord
from wcms.server.store.engine import Database, create_engine
from wcms.server.store.migrate import upgrade
from wcms.server.telemetry import Telemetry

T = TypeVar("T")
FAST = {
    "alert_retry_base": 0.05,
    "alert_retry_cap": 0.2,
    "alert_send_timeout": 2.0,
    "alert_lease": 5.0,
}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as running:
        yield running


async def until(check: Callable[[], Awaitable[T]], *, timeout: float = 15.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy, without blocking the loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last!r}")


def message(title: str, kind: DeliveryKind = DeliveryKind.FIRING) -> AlertMessage:
    return AlertMessage(kind=kind, title=title, summary=f"{title}.", severity=Severity.WARNING)


class Rig:
    """A migrated database, channels on it, and outboxes (replicas) sending from it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(create_engine(settings.effective_database_url))
        self.sealer = Sealer("outbox-test-key")
        self.bus = InProcessBus()
        self.outboxes: list[Outbox] = []
        self._clock = utcnow() - timedelta(seconds=1)

    async def open(self) -> Rig:
        await upgrade(self.db.engine)
        return self

    async def close(self) -> None:
        for outbox in self.outboxes:
            await outbox.stop()
        await self.db.dispose()

    def outbox(self, holder: str, *, start: bool = True) -> Outbox:
        outbox = Outbox(
            self.db, self.sealer, self.settings, bus=self.bus, telemetry=Telemetry(), holder=holder
        )
        self.outboxes.append(outbox)
        if start:
            outbox.start()
        return outbox

    async def channel(
        self, name: str, url: str, *, kind: str = "webhook", secret: str | None = None, enabled=True
    ) -> int:
        now = utcnow()
        new = NewChannel(
            name=name,
            kind=kind,
            sealed_url=self.sealer.seal({"url": url}),
            shown_url=url,
            sealed_secret=self.sealer.seal({"secret": secret}) if secret else None,
            enabled=enabled,
            created_at=now,
            updated_at=now,
            created_by="test",
        )
        async with self.db.begin() as conn:
            return await config_store.insert_channel(conn, new)

    async def enqueue(
        self, channel_id: int, *titles: str, kind=DeliveryKind.FIRING, deadline_s=3600.0
    ) -> list[str]:
        """Queue one message per title, each a millisecond after the last and stamped
        about a second ago (due at once), and wake the outboxes."""
        ids = []
        async with self.db.begin() as conn:
            for title in titles:
                self._clock = max(self._clock, utcnow() - timedelta(seconds=1))
                self._clock += timedelta(milliseconds=1)
                ids.append(
                    await store.enqueue(
                        conn,
                        channel_id=channel_id,
                        message=message(title, kind),
                        now=self._clock,
                        deadline_s=deadline_s,
                    )
                )
        self.bus.publish(OUTBOX_TOPIC, {})
        return ids

    async def get(self, delivery_id: str) -> DeliveryRecord:
        async with self.db.connect() as conn:
            found = await store.get(conn, delivery_id)
        assert found is not None
        return found

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        async with self.db.connect() as conn:
            return await store.attempts(conn, delivery_id)

    async def in_state(self, state: str, *ids: str) -> bool:
        for delivery_id in ids:
            if (await self.get(delivery_id)).state != state:
                return False
        return True


def run(
    database_url: str | None, tmp_path: Path, test: Callable[[Rig], Awaitable[T]], **settings: Any
) -> T:
    async def go() -> T:
        options = {**FAST, **settings}
        rig = await Rig(Settings(data_dir=tmp_path, database_url=database_url, **options)).open()
        try:
            return await test(rig)
        finally:
            await rig.close()

    return asyncio.run(go())


def ids_received(requests: list[Received]) -> list[str]:
    return [r.headers["x-wcms-delivery"] for r in requests if r.status < 300]


# --- claiming ----------------------------------------------------------------------


def test_two_replicas_racing_claim_each_delivery_exactly_once(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        queued: list[str] = []
        for n in range(4):
            channel = await rig.channel(f"c{n}", f"http://127.0.0.1:9/hook/{n}")
            queued += await rig.enqueue(channel, *(f"m{n}-{i}" for i in range(10)))
        claims: dict[str, list[DeliveryRecord]] = {"a": [], "b": []}

        async def claim(holder: str) -> list[DeliveryRecord]:
            async with rig.db.begin() as conn:
                got = await store.claim(conn, holder=holder, now=utcnow(), lease_s=60, limit=7)
            claims[holder] += got
            return got

        async def finish(holder: str, got: list[DeliveryRecord]) -> None:
            done = Attempt(utcnow(), 1.0, 204, "delivered", None)
            async with rig.db.begin() as conn:
                for delivery in got:
                    assert await store.delivered(conn, delivery.id, holder=holder, attempt=done)

        # One after the other, each takes its own rows.
        first_a, first_b = await claim("a"), await claim("b")
        assert first_a and first_b and not {d.id for d in first_a} & {d.id for d in first_b}
        await asyncio.gather(finish("a", first_a), finish("b", first_b))
        # At once: whoever wins each row, no row is taken twice and none is left.
        for _ in range(40):
            a, b = await asyncio.gather(claim("a"), claim("b"))
            await asyncio.gather(finish("a", a), finish("b", b))
        every = [d.id for d in claims["a"] + claims["b"]]
        assert sorted(every) == sorted(queued)  # each claimed once, none left
        # A finish by a holder that does not hold the row writes nothing.
        stale = Attempt(utcnow(), 1.0, 204, "delivered", None)
        async with rig.db.begin() as conn:
            assert not await store.delivered(conn, every[0], holder="c", attempt=stale)
        assert (await rig.get(every[0])).attempts == 1

    run(database_url, tmp_path, test)


def test_two_outboxes_deliver_every_message_once_in_order(database_url, tmp_path, receiver):
    async def test(rig: Rig) -> None:
        order: dict[str, list[str]] = {}
        for n in range(3):
            channel = await rig.channel(f"c{n}", f"{receiver.url}/hook/{n}")
            order[f"/hook/{n}"] = await rig.enqueue(channel, *(f"m{i}" for i in range(12)))
        rig.outbox("replica-a")
        rig.outbox("replica-b")
        every = [delivery_id for ids in order.values() for delivery_id in ids]
        await until(lambda: rig.in_state("delivered", *every), what="all sent")
        for path, ids in order.items():
            assert ids_received(receiver.received(path)) == ids

    run(database_url, tmp_path, test)


def test_a_dead_replicas_lease_is_taken_over_once_it_runs_out(database_url, tmp_path, receiver):
    async def test(rig: Rig) -> None:
        channel = await rig.channel("ops", f"{receiver.url}/hook/ops")
        (delivery_id,) = await rig.enqueue(channel, "orphan")
        async with rig.db.begin() as conn:
            (taken,) = await store.claim(conn, holder="died", now=utcnow(), lease_s=0.8, limit=10)
        rig.outbox("alive")
        await until(lambda: rig.in_state("delivered", delivery_id), what="taken over")
        (got,) = receiver.received()
        assert taken.claimed_until is not None
        assert got.at >= taken.claimed_until.timestamp() - 0.05
        assert (await rig.get(delivery_id)).claimed_by == "alive"

    run(database_url, tmp_path, test)


# --- down, retries, order ----------------------------------------------------------


def test_a_receiver_that_was_down_gets_every_message_once_in_order(
    database_url, tmp_path, receiver
):
    async def test(rig: Rig) -> None:
        receiver.stop()
        channel = await rig.channel("ops", f"{receiver.url}/hook/ops")
        ids = await rig.enqueue(channel, *(f"m{i}" for i in range(8)))
        rig.outbox("r1")

        async def failed_twice() -> bool:
            return len(await rig.attempts(ids[0])) >= 2

        await until(failed_twice, what="two failed attempts")
        for delivery_id in ids[1:]:  # the others wait behind the first, untried
            assert (await rig.get(delivery_id)).state in ("queued", "sending")
            assert await rig.attempts(delivery_id) == []
        receiver.start()
        await until(lambda: rig.in_state("delivered", *ids), what="all delivered")
        assert ids_received(receiver.received()) == ids
        log = await rig.attempts(ids[0])
        assert [a.outcome for a in log[:-1]] == ["retry"] * (len(log) - 1)
        assert log[-1].outcome == "delivered"
        assert all(a.status_code is None and a.error for a in log[:-1])

    run(database_url, tmp_path, test)


def test_a_500_is_retried_with_the_same_delivery_id_and_signature(database_url, tmp_path, receiver):
    async def test(rig: Rig) -> None:
        receiver.set_mode("/hook/", "500", times=1)
        channel = await rig.channel("ops", f"{receiver.url}/hook/ops", secret="s3cret")
        first, second = await rig.enqueue(channel, "first", "second")
        rig.outbox("r1")
        await until(lambda: rig.in_state("delivered", first, second), what="delivered")
        got = receiver.received()
        assert [r.status for r in got] == [500, 200, 200]
        assert [r.headers["x-wcms-delivery"] for r in got] == [first, first, second]
        for request in got:
            mac = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
            assert request.headers["x-wcms-signature"] == f"sha256={mac}"
            assert request.headers["user-agent"] == f"WCMS/{__version__}"
        assert got[1].at - got[0].at < FAST["alert_retry_cap"] + 2.0
        log = await rig.attempts(first)
        assert [(a.outcome, a.status_code) for a in log] == [("retry", 500), ("delivered", None)]
        delivered = await rig.get(first)
        assert delivered.attempts == 2 and delivered.delivered_at is not None
        assert delivered.last_error is None

    run(database_url, tmp_path, test)


def test_a_429_is_waited_out_and_delivered_once(database_url, tmp_path, receiver):
    async def test(rig: Rig) -> None:
        receiver.set_mode("/discord/", "429", times=1, retry_after=0.5)
        channel = await rig.channel("chat", f"{receiver.url}/discord/1/tok", kind="discord")
        first, second = await rig.enqueue(channel, "first", "second")
        outbox = rig.outbox("r1")
        await until(lambda: rig.in_state("delivered", first, second), what="delivered")
        limited, ok, after = receiver.received()
        assert (limited.status, ok.status, after.status) == (429, 204, 204)
        assert ok.at - limited.at >= 0.45
        assert [a.outcome for a in await rig.attempts(first)] == ["rate_limited", "delivered"]
        assert [a.status_code for a in await rig.attempts(first)] == [429, None]
        assert ok.json()["embeds"][0]["title"] == "first"
        assert after.json()["embeds"][0]["title"] == "second"
        counted = outbox.telemetry.alert_deliveries
        assert counted.labels(outcome="rate_limited")._value.get() == 1
        assert counted.labels(outcome="delivered")._value.get() == 2

    run(database_url, tmp_path, test)


def test_a_deleted_discord_webhook_is_dead_at_once(database_url, tmp_path, receiver):
    async def test(rig: Rig) -> None:
        receiver.set_mode("/discord/", "404")
        channel = await rig.channel("chat", f"{receiver.url}/discord/1/tok", kind="discord")
        first, second = await rig.enqueue(channel, "first", "second")
        rig.outbox("r1")
        await until(lambda: rig.in_state("dead", first, second), what="dead")
        (attempt,) = await rig.attempts(first)
        assert (attempt.outcome, attempt.status_code) == ("dead", 404)
        assert "Unknown Webhook" in (attempt.error or "")
        assert receiver.url not in (attempt.error or "")
        dead = await rig.get(first)
        assert (dead.attempts, dead.last_status) == (1, 404)

    run(database_url, tmp_path, test)


def test_a_delivery_is_dead_once_its_deadline_passes(database_url, tmp_path, receiver):
    async def test(rig: Rig) -> None:
        receiver.set_mode("/hook/", "503")
        channel = await rig.channel("ops", f"{receiver.url}/hook/ops")
        (delivery_id,) = await rig.enqueue(channel, "late", deadline_s=3.0)
        rig.outbox("r1")
        await until(lambda: rig.in_state("dead", delivery_id), what="dead")
        log = await rig.attempts(delivery_id)
        assert len(log) >= 2 and all(a.outcome == "retry" for a in log[:-1])
        assert log[-1].outcome == "dead"
        assert "deadline" in (await rig.get(delivery_id)).last_error

    # Stamped a second ago: two seconds left to try.
    run(database_url, tmp_path, test)


def test_a_disabled_channel_waits_but_its_test_message_goes(database_url, tmp_path, receiver):
    async def test(rig: Rig) -> None:
        channel = await rig.channel("ops", f"{receiver.url}/hook/ops", enabled=False)
        (alert,) = await rig.enqueue(channel, "alert")
        (probe,) = await rig.enqueue(channel, "probe", kind=DeliveryKind.TEST)
        outbox = rig.outbox("r1")
        await until(lambda: rig.in_state("delivered", probe), what="the test message")
        await outbox.round()
        assert await rig.in_state("queued", alert)
        assert outbox.depth == 1
        assert ids_received(receiver.received()) == [probe]
        async with rig.db.begin() as conn:
            stored = await config_store.channel_by_name(conn, "ops")
            assert stored is not None
            await config_store.update_channel(conn, replace(stored, enabled=True))
        rig.bus.publish(OUTBOX_TOPIC, {})
        await until(lambda: rig.in_state("delivered", alert), what="the alert, once enabled")

    run(database_url, tmp_path, test)


def test_stop_leaves_the_send_in_flight_to_its_lease_and_requeues_the_rest(
    database_url, tmp_path, receiver
):
    async def test(rig: Rig) -> None:
        receiver.set_mode("/hook/", "slow", delay=1.5)
        channel = await rig.channel("ops", f"{receiver.url}/hook/ops")
        first, *rest = await rig.enqueue(channel, "a", "b", "c")
        outbox = rig.outbox("r1")
        await until(lambda: rig.in_state("sending", first), what="a send in flight")
        await asyncio.to_thread(wait_for, lambda: receiver.received() or None, timeout=5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await outbox.stop()
        assert loop.time() - started < 1.0
        assert not outbox.alive
        in_flight = await rig.get(first)
        assert (in_flight.state, in_flight.claimed_by) == ("sending", "r1")
        for delivery_id in rest:
            back = await rig.get(delivery_id)
            assert (back.state, back.claimed_by, back.attempts) == ("queued", None, 0)

    run(database_url, tmp_path, test)


# --- backoff -----------------------------------------------------------------------


def test_backoff_doubles_from_its_base_to_its_cap_with_full_jitter():
    def top(low: float, high: float) -> float:
        return high

    ceilings = [backoff(n, base=2.0, cap=600.0, draw=top) for n in range(1, 12)]
    assert ceilings == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert backoff(10_000, base=2.0, cap=600.0, draw=top) == 600
    drawn = [backoff(3, base=2.0, cap=600.0) for _ in range(200)]
    assert all(0 <= d <= 8 for d in drawn) and len(set(drawn)) > 100


# --- the delivery log API ----------------------------------------------------------

ADMIN = Actor("test")


@pytest.fixture
def api(database_url: str | None, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, admin_password="x" * 12, **FAST
    )
    app = create_app(settings)
    with TestClient(app) as client:
        core = app.state.core
        _, key = client.portal.call(lambda: core.accounts.create_api_key("t", actor=ADMIN))
        yield client, {"Authorization": f"Bearer {key}"}


def test_the_delivery_log_shows_attempts_and_retries_a_dead_delivery(api, receiver):
    client, auth = api

    def call(method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        answer = client.request(method, path, json=body, headers=auth)
        assert answer.status_code == status, answer.text
        return answer.json()

    receiver.set_mode("/hook/", "410")
    channel = {"name": "ops", "kind": "webhook", "url": f"{receiver.url}/hook/ops"}
    call("POST", "/api/alert-channels", channel, status=201)
    delivery_id = call("POST", "/api/alert-channels/ops/test", status=202)["delivery"]

    def state() -> str:
        return str(call("GET", f"/api/deliveries/{delivery_id}")["state"])

    wait_for(lambda: state() == "dead", what="dead")
    detail = call("GET", f"/api/deliveries/{delivery_id}")
    assert detail["channel"] == "ops" and detail["kind"] == "test"
    assert detail["message"]["title"] == "WCMS test message"
    (attempt,) = detail["attempt_log"]
    assert (attempt["outcome"], attempt["status_code"]) == ("dead", 410)

    receiver.set_mode("/hook/", "ok")
    retried = call("POST", f"/api/deliveries/{delivery_id}/retry")
    assert retried["id"] == delivery_id and retried["state"] in ("queued", "sending", "delivered")
    wait_for(lambda: state() == "delivered", what="delivered after the retry")
    assert ids_received(receiver.received()) == [delivery_id]

    conflict = client.post(f"/api/deliveries/{delivery_id}/retry", headers=auth)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "delivery_not_dead"
    listed = call("GET", "/api/deliveries?state=delivered&channel=ops&limit=10")
    assert [d["id"] for d in listed] == [delivery_id]
    assert call("GET", "/api/deliveries?state=dead") == []
    created = listed[0]["created_at"].replace("+00:00", "Z")
    assert call("GET", f"/api/deliveries?before={created}") == []
    audit = call("GET", "/api/audit?action=alert_delivery.retry")
    assert [entry["target"] for entry in audit] == [delivery_id]
    metrics = client.get("/metrics").text
    assert "wcms_alert_outbox_depth 0.0" in metrics
    assert 'wcms_alert_deliveries_total{outcome="dead"} 1.0' in metrics


REFUSED = [
    ("GET", "/api/deliveries/no-such-delivery", 404, "not_found"),
    ("POST", "/api/deliveries/no-such-delivery/retry", 404, "not_found"),
    ("GET", "/api/deliveries?channel=nope", 404, "not_found"),
    ("GET", "/api/deliveries?state=lost", 422, None),
    ("GET", "/api/deliveries?limit=0", 422, None),
    ("GET", "/api/deliveries?limit=1001", 422, None),
    ("GET", "/api/deliveries?before=yesterday", 422, None),
]


def test_the_delivery_log_refuses_what_it_cannot_answer(api):
    client, auth = api
    for method, path, status, code in REFUSED:
        answer = client.request(method, path, headers=auth)
        assert answer.status_code == status, (path, answer.text)
        if code is not None:
            assert answer.json()["error"]["code"] == code, path
    assert client.get("/api/deliveries").status_code == 401
    for before in ("2025-01-01T00:00:00", "2025-01-01T09:00:00+09:00"):
        found = client.get("/api/deliveries", params={"before": before}, headers=auth)
        assert found.json() == [], found.text

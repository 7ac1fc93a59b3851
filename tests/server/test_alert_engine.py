"""The alert engine on both databases, one evaluation at a time at chosen instants:
pending periods, grouping by room (wait, interval, repeat), resolution, flapping,
silences, acknowledgement, maintenance windows and the left-on report, each kind of
rule, a restart in the middle, and the lease that lets one replica evaluate."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr

from wcms.protocol.alerts import (
    ChannelCreate,
    ChannelKind,
    RuleCreate,
    RuleKind,
    RulePatch,
    SilenceCreate,
    WindowCreate,
)
from wcms.server.bus import InProcessBus
from wcms.server.crypto import Sealer
from wcms.server.services.alerts import AlertConfig, AlertEngine
from wcms.server.services.audit import Actor
from wcms.server.services.clock import utcnow
from wcms.server.settings import Settings
from wcms.server.store import alert_state
from wcms.server.store import deliveries as delivery_store
from wcms.server.store import machines as machine_store
from wcms.server.store.engine import Database, create_engine
from wcms.server.store.machines import InventoryFields, NewMachine, PresenceChange
from wcms.server.store.migrate import upgrade
from wcms.server.store.tables import command_runs, commands, machine_status, programs
from wcms.server.telemetry import Telemetry

T = TypeVar("T")
ADMIN = Actor("admin")
# Every test's clock starts here, a minute after the test begins (so that what the services
# stamp with the real clock, a rule or a silence, is older), and moves only when it says so.
T0 = utcnow()


def start_clock() -> None:
    global T0
    T0 = utcnow().replace(microsecond=0) + timedelta(minutes=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Rig:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(create_engine(settings.effective_database_url))
        self.bus = InProcessBus()
        self.config = AlertConfig(self.db, Sealer("engine-test-key"), settings, bus=self.bus)
        self.engines: list[AlertEngine] = []
        self.engine = self.new_engine("replica-a")

    def new_engine(self, holder: str) -> AlertEngine:
        engine = AlertEngine(
            self.db, self.settings, bus=self.bus, telemetry=Telemetry(), holder=holder
        )
        self.engines.append(engine)
        return engine

    async def open(self) -> Rig:
        await upgrade(self.db.engine)
        await self.config.create_channel(
            ChannelCreate(
                name="ops", kind=ChannelKind.WEBHOOK, url=SecretStr("http://127.0.0.1:9/hook")
            ),
            actor=ADMIN,
        )
        return self

    async def close(self) -> None:
        for engine in self.engines:
            await engine.stop()
        await self.db.dispose()

    async def rule(self, name: str, kind: str = "machine_offline", **fields: Any) -> None:
        values = {"group_wait_s": 0, "group_interval_s": 60, "repeat_s": 3600, **fields}
        body = RuleCreate(name=name, kind=RuleKind(kind), channels=["ops"], **values)
        await self.config.create_rule(body, actor=ADMIN)

    async def machines(self, *ids: str, room: str | None = "A101", online: bool = True) -> None:
        async with self.db.begin() as conn:
            for machine_id in ids:
                fields = InventoryFields(
                    hostname=machine_id,
                    os="Linux",
                    agent_version="1",
                    ip=None,
                    inventory={},
                    updated_at=T0 - timedelta(hours=1),
                )
                await machine_store.create(
                    conn, NewMachine(machine_id, room, T0 - timedelta(hours=1), fields)
                )
        if online:
            await self.presence(-3600, "online", "connected", *ids)

    async def presence(self, seconds: float, status: str, reason: str, *ids: str) -> None:
        async with self.db.begin() as conn:
            await machine_store.set_presence_many(
                conn, [PresenceChange(m, status, reason, at(seconds)) for m in ids]
            )

    async def offline(self, seconds: float, *ids: str, reason: str = "connection_lost") -> None:
        await self.presence(seconds, "offline", reason, *ids)

    async def online(self, seconds: float, *ids: str) -> None:
        await self.presence(seconds, "online", "connected", *ids)

    async def run(self, seconds: float) -> int:
        return await self.engine.evaluate(at(seconds))

    async def messages(self) -> list[dict[str, Any]]:
        """Every queued message, oldest first."""
        async with self.db.connect() as conn:
            found = await delivery_store.recent(conn, limit=1000)
        return [d.message for d in reversed(found)]

    async def titles(self) -> list[str]:
        return [m["title"] for m in await self.messages()]


def run(
    database_url: str | None, tmp_path: Path, test: Callable[[Rig], Awaitable[T]], **settings: Any
) -> T:
    start_clock()

    async def go() -> T:
        options = {"alert_flap_count": 3, "alert_flap_window_s": 300, **settings}
        config = Settings(data_dir=tmp_path, database_url=database_url, **options)
        rig = await Rig(config).open()
        try:
            return await test(rig)
        finally:
            await rig.close()

    return asyncio.run(go())


# --- machine_offline, pending, grouping ----------------------------------------------


def test_a_lost_machine_fires_once_after_its_pending_period_and_resolves_once(
    database_url, tmp_path
):
    async def test(rig: Rig) -> None:
        await rig.rule("offline", for_s=30)
        await rig.machines("lab-01", "lab-02")
        assert await rig.run(0) == 0
        await rig.offline(10, "lab-01")
        assert await rig.run(11) == 0  # pending
        [pending] = await rig.engine.list_alerts()
        assert pending.state == "pending" and pending.subjects == ["lab-01"]
        assert await rig.run(35) == 0  # not 30 s yet
        assert await rig.run(42) == 1
        assert await rig.run(43) == 0 and await rig.run(100) == 0  # told once
        [firing] = await rig.engine.list_alerts(state="firing")
        assert firing.firing == ["lab-01"] and firing.group == "room:A101"
        await rig.online(60, "lab-01")
        assert await rig.run(61) == 0  # resolved: told a group interval after the last
        assert await rig.run(101) == 0
        assert await rig.run(103) == 1
        assert await rig.run(300) == 0
        titles = await rig.titles()
        assert titles == [
            "[FIRING] offline: 1 machine offline in A101",
            "[RESOLVED] offline: 1 machine offline in A101",
        ]
        [resolved] = await rig.engine.list_alerts()
        assert resolved.state == "resolved" and resolved.resolved_at == at(61)
        first, last = await rig.messages()
        assert first["subjects"] == ["lab-01"] and first["lines"] == [
            "lab-01: offline, connection lost"
        ]
        assert last["kind"] == "resolved" and last["resolved_at"] is not None

    run(database_url, tmp_path, test)


def test_a_machine_back_within_its_pending_period_tells_nothing(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("offline", for_s=60)
        await rig.machines("lab-01")
        await rig.offline(0, "lab-01")
        await rig.run(1)
        await rig.online(20, "lab-01")
        await rig.run(21)
        await rig.run(200)
        assert await rig.titles() == []
        assert await rig.engine.list_alerts() == []  # a pending alert that never fired goes

    run(database_url, tmp_path, test)


def test_a_room_going_dark_together_is_one_message_naming_ten_and_how_many_more(
    database_url, tmp_path
):
    async def test(rig: Rig) -> None:
        await rig.rule("offline", group_wait_s=30, group_interval_s=300)
        room = [f"a101-{n:02}" for n in range(1, 21)]
        await rig.machines(*room)
        await rig.machines("b202-01", room="B202")
        for n, machine in enumerate(room):  # twenty machines over twenty seconds
            await rig.offline(n, machine)
            if n == 0:
                await rig.offline(0, "b202-01")
            await rig.run(n + 0.5)
        await rig.run(25)
        assert await rig.titles() == []  # the group wait gathers them
        await rig.run(31)
        await rig.run(36)
        titles = sorted(await rig.titles())  # queued together: in no order
        assert titles == [
            "[FIRING] offline: 1 machine offline in B202",
            "[FIRING] offline: 20 machines offline in A101",
        ]
        a101 = next(m for m in await rig.messages() if "A101" in m["title"])
        assert len(a101["lines"]) == 20 and len(a101["subjects"]) == 20
        # A late one waits for the group interval, and then the message names all 21.
        await rig.machines("a101-21")
        await rig.offline(40, "a101-21")
        await rig.run(41)
        assert len(await rig.titles()) == 2
        await rig.run(331)
        assert (await rig.titles())[-1] == "[FIRING] offline: 21 machines offline in A101"

    run(database_url, tmp_path, test)


def test_a_firing_alert_is_told_again_after_its_repeat_interval_unless_acknowledged(
    database_url, tmp_path
):
    async def test(rig: Rig) -> None:
        await rig.rule("offline", repeat_s=600)
        await rig.machines("lab-01", "lab-02", room="B202")
        await rig.offline(0, "lab-01")
        assert await rig.run(1) == 1
        assert await rig.run(500) == 0
        assert await rig.run(602) == 1
        assert (await rig.messages())[-1]["summary"].startswith("Still 1 machine offline")
        [alert] = await rig.engine.list_alerts()
        acked = await rig.engine.acknowledge(alert.id, actor=ADMIN)
        assert acked.acked_by == "admin"
        assert await rig.run(1300) == 0  # acknowledged: no more repeats
        await rig.offline(1310, "lab-02")  # a change is still told
        assert await rig.run(1311) == 1
        assert (await rig.titles())[-1] == "[FIRING] offline: 2 machines offline in B202"

    run(database_url, tmp_path, test)


def test_a_graceful_shutdown_counts_only_when_the_rule_says_so(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("lost")
        await rig.rule("any-off", include_shutdown=True)
        await rig.machines("lab-01", "lab-02")
        await rig.offline(0, "lab-01", reason="shutdown")
        await rig.offline(0, "lab-02", reason="heartbeat_timeout")
        await rig.run(1)
        titles = sorted(await rig.titles())
        assert titles == [
            "[FIRING] any-off: 2 machines offline in A101",
            "[FIRING] lost: 1 machine offline in A101",
        ]

    run(database_url, tmp_path, test)


# --- flapping, silences, windows -------------------------------------------------------


def test_a_flapping_machine_raises_one_notice_and_stays_quiet_until_stable(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("offline", group_interval_s=0)
        await rig.machines("lab-01")
        t = 0.0
        for _ in range(6):  # goes and comes back every ten seconds
            await rig.offline(t, "lab-01")
            await rig.run(t + 1)
            await rig.online(t + 5, "lab-01")
            await rig.run(t + 6)
            t += 10
        titles = await rig.titles()
        assert titles.count("[FLAPPING] offline: lab-01 in A101") == 1
        # Two firings and their resolutions; the third firing made it flapping.
        assert [x.split(" ")[0] for x in titles] == [
            "[FIRING]",
            "[RESOLVED]",
            "[FIRING]",
            "[RESOLVED]",
            "[FLAPPING]",
        ]
        told = len(titles)
        # Quiet for a whole flap window (300 s): stable, and the alert resolves once.
        await rig.run(t + 310)
        await rig.run(t + 311)
        assert (await rig.titles())[told:] == ["[RESOLVED] offline: 1 machine offline in A101"]

    run(database_url, tmp_path, test)


def test_a_silenced_machine_is_not_told_until_the_silence_ends(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("offline")
        await rig.machines("lab-01", "lab-02")
        await rig.config.create_silence(
            SilenceCreate(selector="lab-01", duration_s=3600), actor=ADMIN
        )
        await rig.offline(0, "lab-01")
        await rig.run(1)
        assert await rig.titles() == []
        [alert] = await rig.engine.list_alerts()
        assert alert.state == "firing" and alert.silenced
        await rig.offline(5, "lab-02")  # not silenced: told alone
        await rig.run(6)
        [message] = await rig.messages()
        assert message["subjects"] == ["lab-02"]

    run(database_url, tmp_path, test)


def test_offline_inside_a_maintenance_window_raises_nothing(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("offline")
        await rig.machines("lab-01", "lab-02")
        await rig.machines("srv-01", room="Server")
        await rig.config.create_window(
            WindowCreate(
                name="a101-night",
                selector="room:A101",
                starts_at=at(100),
                ends_at=at(1000),
                report_left_on=True,
                channels=["ops"],
            ),
            actor=ADMIN,
        )
        await rig.offline(50, "lab-01")  # before the window: told
        await rig.run(51)
        await rig.run(101)  # the window opens: lab-02 is left on
        await rig.offline(150, "lab-02", "srv-01")  # inside: only the server room is told
        await rig.run(151)
        titles = await rig.titles()
        assert "[FIRING] offline: 1 machine offline in Server" in titles
        assert "[LEFT ON] a101-night: 1 machine still on" in titles  # lab-02 at 100 s
        assert not any("2 machines" in title for title in titles)
        # After the window lab-02 is still off: it went off inside, so still nothing.
        await rig.run(1100)
        assert not any("2 machines" in title for title in await rig.titles())
        left_on = next(m for m in await rig.messages() if m["kind"] == "digest")
        assert left_on["subjects"] == ["lab-02"]
        await rig.run(1200)
        assert [m["kind"] for m in await rig.messages()].count("digest") == 1

    run(database_url, tmp_path, test)


# --- the other kinds -------------------------------------------------------------------


def test_a_program_down_fires_and_a_metric_above_its_threshold_for_its_duration(
    database_url, tmp_path
):
    async def test(rig: Rig) -> None:
        await rig.rule("game-down", "program_down")
        await rig.rule("hot", "metric", metric="cpu", above=90, for_s=60)
        await rig.rule("fat", "metric", metric="program_rss", above=1000)
        await rig.machines("game-01", room=None)
        async with rig.db.begin() as conn:
            await conn.execute(
                programs.insert().values(
                    machine_id="game-01",
                    name="palworld",
                    preset="custom",
                    spec={},
                    desired="running",
                    restart_seq=0,
                    revision=1,
                    created_at=T0,
                    updated_at=T0,
                    state="backoff",
                    restarts=3,
                    troubled=True,
                    last_exit={"code": 139},
                    rss_bytes=2000 * 1024 * 1024,
                )
            )
            report = {"cpu_percent": 97.0, "ram_used": 1, "ram_total": 2, "ram_percent": 50.0}
            await conn.execute(
                machine_status.insert().values(machine_id="game-01", at=T0, report=report)
            )
        await rig.run(0)
        await rig.run(61)
        titles = sorted(await rig.titles())
        assert titles == [
            "[FIRING] game-down: 1 program down",
            "[FIRING] hot: 1 over its threshold",
        ]  # a backoff program is not running: its memory is not watched
        down = next(m for m in await rig.messages() if m["rule"] == "game-down")
        assert down["subjects"] == ["game-01/palworld"]
        assert down["lines"] == ["game-01/palworld: backoff, exit code 139"]
        hot = next(m for m in await rig.messages() if m["rule"] == "hot")
        assert hot["lines"] == ["game-01: CPU 97% (above 90%)"]

    run(database_url, tmp_path, test)


def test_each_failed_run_is_told_once_and_never_resolved(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("failed", "command_failed")
        await rig.machines("lab-01", "lab-02")
        async with rig.db.begin() as conn:
            result = await conn.execute(
                commands.insert()
                .values(
                    type="script", selector="room:A101", payload={}, timeout_s=60, created_at=T0
                )
                .returning(commands.c.id)
            )
            command_id = result.scalar_one()
            for machine in ("lab-01", "lab-02"):
                await conn.execute(
                    command_runs.insert().values(
                        command_id=command_id,
                        machine_id=machine,
                        state="failed",
                        created_at=at(1),
                        finished_at=at(2),
                        exit_code=3,
                    )
                )
        await rig.run(3)
        await rig.run(100)
        await rig.run(5000)
        [message] = await rig.messages()
        assert message["title"] == "[FIRING] failed: 2 commands failed in A101"
        assert message["lines"][0] == f"lab-01: script (command {command_id}) failed, exit code 3"
        [alert] = await rig.engine.list_alerts()
        assert alert.state == "resolved"

    run(database_url, tmp_path, test)


def test_two_agents_on_one_machine_id_fire(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("clones", "agent_conflict")
        await rig.machines("lab-01")
        async with rig.db.begin() as conn:
            await machine_store.set_conflict(conn, "lab-01", {"hostname": "lab-01-clone"})
        await rig.run(0)
        [message] = await rig.messages()
        assert message["lines"] == [
            "lab-01: two agents claim machine id lab-01 (also lab-01-clone)"
        ]

    run(database_url, tmp_path, test)


# --- durability, rules changing, replicas ------------------------------------------------


def test_a_restart_neither_forgets_a_firing_alert_nor_tells_it_again(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("offline")
        await rig.machines("lab-01")
        await rig.offline(0, "lab-01")
        assert await rig.run(1) == 1
        rig.engine = rig.new_engine("replica-b")  # a new process, the same database
        assert await rig.run(2) == 0
        await rig.online(10, "lab-01")
        await rig.run(11)
        await rig.run(80)
        assert (await rig.titles())[-1].startswith("[RESOLVED]")
        assert len(await rig.titles()) == 2

    run(database_url, tmp_path, test)


def test_a_disabled_rule_tells_nothing_more(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("offline")
        await rig.machines("lab-01")
        await rig.offline(0, "lab-01")
        await rig.run(1)
        await rig.config.update_rule("offline", RulePatch(enabled=False), actor=ADMIN)
        await rig.online(10, "lab-01")
        await rig.run(11)
        await rig.run(100)
        assert len(await rig.titles()) == 1
        [alert] = await rig.engine.list_alerts()
        assert alert.state == "resolved"

    run(database_url, tmp_path, test)


def test_one_replica_holds_the_evaluation_lease_until_it_lets_go(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        other = rig.new_engine("replica-b")
        assert await rig.engine._lead()
        assert not await other._lead()
        assert await rig.engine._lead()  # renewed
        await rig.engine.stop()  # lets go
        assert await other._lead()

    run(database_url, tmp_path, test)


def test_the_alert_api_shows_and_acknowledges_alerts(database_url, tmp_path):
    async def test(rig: Rig) -> None:
        await rig.rule("offline")
        await rig.machines("lab-01")
        await rig.offline(0, "lab-01")
        await rig.run(1)
        [alert] = await rig.engine.list_alerts(state="active")
        assert await rig.engine.list_alerts(state="resolved") == []
        assert (await rig.engine.get_alert(alert.id)).rule == "offline"
        async with rig.db.connect() as conn:
            assert await alert_state.count_firing(conn) == 1
        await rig.engine.acknowledge(alert.id, actor=ADMIN)
        again = await rig.engine.acknowledge(alert.id, actor=Actor("someone-else"))
        assert again.acked_by == "admin"  # the first acknowledgement stands

    run(database_url, tmp_path, test)

"""The server's parts, built once per process and shared by the API and channel."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import uuid
from contextlib import suppress

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.server import crypto, csrf
from wcms.server.bus import Bus, InProcessBus, StatusFeed
from wcms.server.services.accounts import Accounts
from wcms.server.services.action_policies import ActionPolicies
from wcms.server.services.activity import Activity
from wcms.server.services.alerts import AlertConfig, AlertEngine, Outbox
from wcms.server.services.audit import Actor, AuditLog
from wcms.server.services.commands import Commands
from wcms.server.services.commands.progress import RunProgressWriter
from wcms.server.services.enrollment import Enrollment
from wcms.server.services.files import Files
from wcms.server.services.heartbeats import HeartbeatWriter
from wcms.server.services.history import History
from wcms.server.services.links import LinkRegistry
from wcms.server.services.machines import Machines
from wcms.server.services.presence import Presence
from wcms.server.services.programs import Programs
from wcms.server.services.rooms import Rooms
from wcms.server.services.throttle import LoginThrottle
from wcms.server.settings import Settings
from wcms.server.store.engine import Database, create_engine
from wcms.server.store.migrate import upgrade
from wcms.server.telemetry import Telemetry
from wcms.server.workers.sweeper import Sweeper

log = logging.getLogger("wcms.server")


class Core:
    """Engine, services and background workers of one server process."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.db = Database(engine or create_engine(settings.effective_database_url))
        key = secret_key(settings)
        self.sealer = crypto.Sealer(key)
        self.csrf_key = csrf.derive_key(key)
        self.registry = LinkRegistry()
        self.bus: Bus = InProcessBus()
        self.status_feed = StatusFeed(self.bus)
        self.telemetry = Telemetry()
        self.presence = Presence(self.db, self.registry, settings, bus=self.bus)
        self.enrollment = Enrollment(self.db, self.presence)
        self.commands = Commands(
            self.db,
            self.registry,
            settings,
            self.sealer,
            bus=self.bus,
            telemetry=self.telemetry,
        )
        self.telemetry.count_connected(self.presence.online_count)
        self.telemetry.presence_unstored.set_function(self.presence.pending_writes)
        self.heartbeats = HeartbeatWriter(self.db, feed=self.status_feed, telemetry=self.telemetry)
        self.accounts = Accounts(self.db)
        self.audit = AuditLog(self.db)
        self.activity = Activity(self.db)
        self.history = History(self.db)
        self.machines = Machines(self.db, self.presence, bus=self.bus)
        self.rooms = Rooms(self.db, bus=self.bus)
        self.files = Files(self.db, settings)
        self.policies = ActionPolicies(self.db)
        self.programs = Programs(
            self.db,
            self.registry,
            self.sealer,
            bus=self.bus,
            sample_every_s=settings.heartbeat_interval / 2,
        )
        self.progress = RunProgressWriter(self.db, settings, self.sealer)
        self.login_throttle = LoginThrottle()
        self.sweeper = Sweeper(self.presence, self.commands)
        # This process among the server's replicas: who holds a claimed delivery or lease.
        self.replica_id = uuid.uuid4().hex[:12]
        self.alert_config = AlertConfig(self.db, self.sealer, settings, bus=self.bus)
        self.alert_engine = AlertEngine(
            self.db, settings, bus=self.bus, telemetry=self.telemetry, holder=self.replica_id
        )
        self.outbox = Outbox(
            self.db,
            self.sealer,
            settings,
            bus=self.bus,
            telemetry=self.telemetry,
            holder=self.replica_id,
        )
        self._tasks: list[asyncio.Task[None]] = []
        for worker in WORKERS:
            self.telemetry.worker_up.labels(worker=worker).set_function(
                functools.partial(self._worker_up, worker)
            )
        self.telemetry.storage_writable.set_function(lambda: float(self.db.write_failure is None))

    async def start(self) -> None:
        """Migrate, make sure an admin exists, and start the background workers."""
        await upgrade(self.db.engine)
        await self.bootstrap_admin()
        await self.presence.recover_after_restart()
        self._tasks = [
            asyncio.create_task(self.heartbeats.run(), name="heartbeats"),
            asyncio.create_task(self.status_feed.run(), name="status-feed"),
        ]
        for task in self._tasks:
            task.add_done_callback(_report_death)
        self.sweeper.start()
        self.alert_engine.start()
        self.outbox.start()
        settle_garbage_collector()

    async def stop(self) -> None:
        """Stop the workers: the sweeper at once, the heartbeat writer after its last
        flush, then the links' timers and the engine."""
        await self.sweeper.stop()
        await self.alert_engine.stop()
        await self.outbox.stop()
        await self.heartbeats.stop()
        self.status_feed.stop()
        await self.bus.close()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        await self.presence.close()
        await self.db.dispose()

    async def bootstrap_admin(self) -> str | None:
        """On first start, create user ``admin``; returns a generated password to show.

        The password comes from WCMS_ADMIN_PASSWORD when set; otherwise one is generated
        and shown once. Demo mode resets the admin password to a new one on every start.
        """
        configured = self.settings.admin_password
        password = configured.get_secret_value() if configured else None
        actor = Actor("system")
        if not await self.accounts.has_users():
            generated = password is None
            password = password or crypto.generate_password()
            await self.accounts.create_user("admin", password, actor=actor)
            if generated:
                announce_password(password)
            return password if generated else None
        if self.settings.demo:
            password = password or crypto.generate_password()
            await self.accounts.set_password("admin", password, actor=actor)
            announce_password(password)
            return password
        return None

    def _worker_up(self, worker: str) -> float:
        return float(self.workers().get(worker, False))

    def workers(self) -> dict[str, bool]:
        """Each background worker by name: True while it runs. One that is not running
        after start is dead, and the server is not ready."""
        alive = {task.get_name(): not task.done() for task in self._tasks}
        return {
            **alive,
            "sweeper": self.sweeper.alive,
            "alert-engine": self.alert_engine.alive,
            "alert-outbox": self.outbox.alive,
        }

    async def readiness(self) -> tuple[str, str] | None:
        """None when the server can do its work; else (code, reason in words)."""
        if not await self.database_ready():
            return "database_unavailable", "the database does not answer"
        if not await self.db.writable():
            return "storage_unwritable", f"writes fail: {self.db.write_failure}"
        dead = sorted(name for name, alive in self.workers().items() if not alive)
        if dead:
            return "worker_down", f"background workers stopped: {', '.join(dead)}"
        return None

    async def database_ready(self) -> bool:
        try:
            async with self.db.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any driver error means "not ready"; the probe reports it
            log.warning("database not reachable", exc_info=True)
            return False
        return True


WORKERS = ("heartbeats", "status-feed", "sweeper", "alert-engine", "alert-outbox")


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background worker %s died", task.get_name(), exc_info=task.exception())


def secret_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return crypto.load_or_create_key(settings.data_dir / "secret.key")


def announce_password(password: str) -> None:
    """Show a generated admin password once, on the console, not in the log file."""
    banner = (
        "\n  WCMS admin login  ->  user: admin   password: "
        f"{password}\n  (shown once; change it with `wcms user passwd admin`)\n"
    )
    print(banner, flush=True)


def settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector off the hot path of a busy server.

    Everything loaded at start-up (modules, classes, validators) lives as long as the
    process: freezing it keeps each full collection from walking it again. A higher
    first threshold lets the short-lived objects of each frame die before a
    collection would promote them.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)

"""The server's parts, built once per process and shared by the API and channel."""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import suppress
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.server import crypto, csrf
from wcms.server.bus import Bus, InProcessBus, StatusFeed
from wcms.server.services.accounts import Accounts
from wcms.server.services.action_policies import ActionPolicies
from wcms.server.services.audit import Actor
from wcms.server.services.commands import Commands
from wcms.server.services.enrollment import Enrollment
from wcms.server.services.files import Files
from wcms.server.services.heartbeats import HeartbeatWriter
from wcms.server.services.links import LinkRegistry
from wcms.server.services.machines import Machines
from wcms.server.services.presence import Presence
from wcms.server.services.progress import RunProgressWriter
from wcms.server.services.rooms import Rooms
from wcms.server.services.throttle import LoginThrottle
from wcms.server.settings import Settings
from wcms.server.store.engine import create_engine
from wcms.server.store.migrate import upgrade
from wcms.server.telemetry import Telemetry

log = logging.getLogger("wcms.server")

SWEEP_INTERVAL_S = 1.0


class Core:
    """Engine, services and background workers of one server process."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_engine(settings.effective_database_url)
        self.registry = LinkRegistry()
        self.bus: Bus = InProcessBus()
        self.status_feed = StatusFeed(self.bus)
        self.presence = Presence(self.engine, self.registry, settings, bus=self.bus)
        self.enrollment = Enrollment(self.engine, self.presence)
        self.sealer = crypto.Sealer(secret_key(settings))
        self.csrf_key = csrf.derive_key(secret_key(settings))
        self.telemetry = Telemetry()
        self.commands = Commands(
            self.engine,
            self.registry,
            settings,
            self.sealer,
            bus=self.bus,
            telemetry=self.telemetry,
        )
        self.telemetry.count_connected(self.presence.online_count)
        self.heartbeats = HeartbeatWriter(
            self.engine, feed=self.status_feed, telemetry=self.telemetry
        )
        self.accounts = Accounts(self.engine)
        self.machines = Machines(self.engine, self.presence, bus=self.bus)
        self.rooms = Rooms(self.engine, bus=self.bus)
        self.files = Files(self.engine, settings)
        self.policies = ActionPolicies(self.engine)
        self.progress = RunProgressWriter(self.engine, settings, self.sealer)
        self.login_throttle = LoginThrottle()
        self._workers: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        """Migrate, make sure an admin exists, and start the background workers."""
        await upgrade(self.engine)
        await self.bootstrap_admin()
        await self.presence.recover_after_restart()
        self._workers = [
            asyncio.create_task(self.heartbeats.run(), name="heartbeat-writer"),
            asyncio.create_task(self._sweep_forever(), name="sweeper"),
            asyncio.create_task(self.status_feed.run(), name="status-feed"),
        ]
        settle_garbage_collector()

    async def stop(self) -> None:
        await self.heartbeats.stop()
        self.status_feed.stop()
        await self.bus.close()
        for task in self._workers:
            if task.get_name() == "sweeper":
                task.cancel()
        for task in self._workers:
            with suppress(asyncio.CancelledError):
                await task
        await self.presence.close()
        await self.engine.dispose()

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

    async def database_ready(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any driver error means "not ready"; the probe reports it
            log.warning("database not reachable", exc_info=True)
            return False
        return True

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self.presence.sweep()
                await self.commands.sweep()
            except Exception:  # a sweep must never kill the worker; the next one retries
                log.exception("sweep failed")


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

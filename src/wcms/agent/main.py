"""The agent process: enrol once, then stay connected and run what the server sends.

Exit codes: 0 stopped on request; 1 unexpected failure; 2 cannot start (settings,
state directory, no credential and no token, token refused); 3 this machine's
credential was revoked or is unknown to the server and cannot be renewed (systemd's
``RestartPreventExitStatus=3`` keeps it from restarting in a loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
from collections.abc import Callable
from functools import partial

import aiohttp

from wcms.agent.actions import ActionSettings, default_actions, power_backend_from_spec
from wcms.agent.backoff import Backoff
from wcms.agent.client import ServerClient
from wcms.agent.collectors import StatusCollector, collect_inventory
from wcms.agent.config import AgentConfig
from wcms.agent.connection import Connection
from wcms.agent.errors import (
    AgentError,
    ConfigError,
    CredentialRevoked,
    DuplicateMachine,
    EnrollmentRefused,
    ServerError,
    TransportError,
    UnknownCredential,
)
from wcms.agent.files import ServerFileStore
from wcms.agent.journal import Journal
from wcms.agent.outbox import Outbox
from wcms.agent.platform import Platform, current_platform
from wcms.agent.runner import RunManager
from wcms.agent.state import Credential, StateDir
from wcms.agent.supervisor import Supervisor
from wcms.agent.transport import ChannelContext
from wcms.agent.transport.programs import ProgramFeed
from wcms.protocol import RegisterRequest

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


class Agent:
    """One agent process's life. ``run`` until ``stop``; safe to stop from a signal
    handler or a Windows service control handler (through the loop)."""

    def __init__(self, config: AgentConfig, *, platform: Platform | None = None) -> None:
        self.config = config
        self.platform = platform or current_platform()
        # Lets the server tell a reconnect of this process from a second process that
        # claims the same machine id (a cloned image).
        self.session_id = secrets.token_hex(16)
        self.state = StateDir(config.state_dir, platform=self.platform)
        self._backoff = Backoff(config.backoff_initial, config.backoff_max)
        self._resources = contextlib.AsyncExitStack()
        self._runner: RunManager | None = None
        self._programs: ProgramFeed | None = None
        self._supervisor: Supervisor | None = None
        self._connection: Connection | None = None
        self._work: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None

    async def run(self) -> int:
        """Run until stopped or until an error ends the agent; returns the exit code."""
        if self._stopping is not None:
            return EXIT_OK
        self._work = asyncio.create_task(self._serve())
        try:
            await asyncio.wait({self._work})
        finally:
            if not self._work.done():  # run() itself was cancelled
                await self.stop("cancelled")
            if self._stopping is not None:
                await asyncio.wait({self._stopping})
            elif self._runner is not None:
                # Ended by an error: running commands must not outlive the agent.
                await self._runner.shutdown()
            await self._resources.aclose()
        return self._exit_code(self._work)

    async def stop(self, reason: str = "shutdown") -> None:
        """Stop gracefully within ``shutdown_timeout``: kill running commands (the next
        start reports them interrupted), say goodbye to the server, end ``run``."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(reason))
        await asyncio.shield(self._stopping)

    async def _stop(self, reason: str) -> None:
        log.info("stopping (%s)", reason)
        try:
            async with asyncio.timeout(self.config.shutdown_timeout):
                if self._runner is not None:
                    await self._runner.shutdown()
                await self._close_programs()
                if self._connection is not None:
                    await self._connection.say_goodbye(reason)
        except TimeoutError:
            log.warning("goodbye took over %s s; stopping anyway", self.config.shutdown_timeout)
        except AgentError as exc:
            log.info("could not say goodbye to the server: %s", exc)
        finally:
            if self._work is not None:
                self._work.cancel()

    def _exit_code(self, work: asyncio.Task[None]) -> int:
        if work.cancelled():
            return EXIT_OK
        exc = work.exception()
        if isinstance(exc, CredentialRevoked):
            log.error(
                "this machine's credential was revoked by an administrator; delete %s and "
                "enrol again with a new token",
                self.state.credential_path,
            )
        elif isinstance(exc, UnknownCredential):
            log.error(
                "the server does not know this machine's credential and no enrolment token "
                "was given; delete %s and start the agent with a new --token",
                self.state.credential_path,
            )
        elif isinstance(exc, AgentError):
            log.error("%s", exc)
        elif exc is not None:
            log.error("the agent failed", exc_info=exc)
        if exc is None:
            return EXIT_OK
        return exc.exit_code if isinstance(exc, AgentError) else EXIT_FAILED

    async def _serve(self) -> None:
        """1. Take the state directory, 2. recover the journal, 3. enrol if needed,
        4. stay connected, enrolling again if the server forgot this machine."""
        self.state.prepare()
        self._resources.callback(self.state.release)
        self.platform.lower_priority()
        machine_id = await asyncio.to_thread(self.state.machine_id, self.config.machine_id)
        journal = Journal(self.state.journal_path)
        self._resources.callback(journal.close)
        outbox = Outbox(journal)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=15))
        self._resources.push_async_callback(session.close)
        client = ServerClient(session, self.config.server_url, session_id=self.session_id)
        self._programs = await self._start_programs()
        self._runner = self._build_runner(journal, outbox, client=client, machine_id=machine_id)
        self._runner.recover()
        while True:
            credential = self.state.load_credential() or await self._enrol(client, machine_id)
            machine_id = self._adopt(credential, machine_id)
            client.credential = credential.credential
            self._connection = self._build_connection(
                client, self._runner, outbox=outbox, machine_id=machine_id
            )
            try:
                await self._connection.run()
            except UnknownCredential:
                if not self.config.enrollment_token:
                    raise
                log.warning("the server does not know this machine's credential; enrolling again")
                self.state.delete_credential()
            finally:
                self._connection = None

    async def _start_programs(self) -> ProgramFeed:
        """Supervise the programs this machine runs, from the set on disk, before the
        server is reached: game servers keep running (and restarting) without it.
        Programs outlive the agent; the next start adopts them."""
        supervisor: Supervisor | None = None

        def build(on_change: Callable[[], None]) -> Supervisor:
            nonlocal supervisor
            supervisor = Supervisor(self.state.path, platform=self.platform, on_change=on_change)
            return supervisor

        feed = ProgramFeed(build)
        assert supervisor is not None
        await supervisor.start()
        self._supervisor = supervisor
        self._resources.push_async_callback(self._close_programs)
        return feed

    async def _close_programs(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            await supervisor.close()

    def _build_runner(
        self, journal: Journal, outbox: Outbox, *, client: ServerClient, machine_id: str
    ) -> RunManager:
        config = self.config
        power = power_backend_from_spec(
            config.power_backend, platform=self.platform, machine_id=machine_id
        )
        settings = ActionSettings(
            machine_id=machine_id,
            system_root=config.system_root,
            download_dirs=config.download_dirs,
            max_download_bytes=config.max_download_bytes,
            display=config.display,
            blocked_commands=config.blocked_commands,
        )
        actions = default_actions(
            self.platform,
            max_output_bytes=config.max_output_bytes,
            power=power,
            settings=settings,
            allowed=config.allowed_actions,
            programs=self._supervisor,
        )
        return RunManager(
            journal,
            outbox,
            actions=actions,
            files=ServerFileStore(client),
            max_output_chars=config.max_output_bytes,
            platform=self.platform,
        )

    def _build_connection(
        self, client: ServerClient, runner: RunManager, *, outbox: Outbox, machine_id: str
    ) -> Connection:
        ctx = ChannelContext(
            client=client,
            machine_id=machine_id,
            runner=runner,
            outbox=outbox,
            status=StatusCollector(),
            inventory=partial(collect_inventory, self.platform),
            heartbeat_interval=self.config.heartbeat_interval,
            progress=runner.progress,
            programs=self._programs,
        )
        return Connection(ctx, transport=self.config.transport, backoff=self._backoff)

    async def _enrol(self, client: ServerClient, machine_id: str) -> Credential:
        """Trade the enrolment token for a credential, retrying what may pass later."""
        token = self.config.enrollment_token
        if not token:
            raise ConfigError(
                f"no credential in {self.state.credential_path} and no enrolment token: "
                "pass --token (or set WCMS_AGENT_ENROLLMENT_TOKEN)"
            )
        while True:
            inventory = await asyncio.to_thread(collect_inventory, self.platform)
            request = RegisterRequest(
                enrollment_token=token, machine_id=machine_id, inventory=inventory
            )
            try:
                response = await client.enrol(request)
            except EnrollmentRefused as exc:
                raise EnrollmentRefused(f"the server refused the enrolment token: {exc}") from exc
            except DuplicateMachine as exc:
                log.error(
                    "cannot enrol: another live agent already holds machine id %s (%s); "
                    "start this agent with --machine-id or give this machine its own OS "
                    "machine id",
                    machine_id,
                    exc,
                )
                await asyncio.sleep(self._backoff.longest_delay())
                continue
            except (TransportError, ServerError) as exc:
                delay = self._backoff.next_delay()
                log.warning("enrolment failed: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            if not response.credential:
                raise ServerError(
                    "the server accepted the enrolment but sent no credential", status=200
                )
            credential = Credential(
                server=self.config.server_url,
                machine_id=response.machine_id,
                credential=response.credential,
            )
            self.state.save_credential(credential)
            self._backoff.reset()
            log.info("enrolled as %s", credential.machine_id)
            return credential

    def _adopt(self, credential: Credential, machine_id: str) -> str:
        """The machine id to use with ``credential``: the one it was issued for."""
        if credential.server.rstrip("/") != self.config.server_url.rstrip("/"):
            log.warning(
                "the credential in %s was issued by %s, not %s; delete it to enrol with "
                "this server",
                self.state.credential_path,
                credential.server,
                self.config.server_url,
            )
        if credential.machine_id != machine_id:
            log.warning(
                "the credential was issued for machine id %s but this machine's id is %s; "
                "if this disk was cloned, delete %s and enrol the clone with a new token",
                credential.machine_id,
                machine_id,
                self.state.credential_path,
            )
        return credential.machine_id


def configure_logging(level: int) -> None:
    """One line per event on stderr, unless the host program set up logging."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("wcms").setLevel(level)


def run_agent(config: AgentConfig) -> int:
    """Run the agent in this process until SIGTERM/SIGINT; returns the exit code."""
    configure_logging(config.log_level_number)
    return asyncio.run(_main(config))


async def _main(config: AgentConfig) -> int:
    agent = Agent(config)
    stops: set[asyncio.Task[None]] = set()

    def request_stop() -> None:
        task = asyncio.get_running_loop().create_task(agent.stop("shutdown"))
        stops.add(task)
        task.add_done_callback(stops.discard)

    agent.platform.install_stop_handler(asyncio.get_running_loop(), request_stop)
    return await agent.run()

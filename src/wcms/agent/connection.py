"""Staying connected: choose a transport, reconnect with backoff, fall back to
long-poll when WebSockets do not get through."""

from __future__ import annotations

import asyncio
import logging
import time

from wcms.agent.backoff import Backoff
from wcms.agent.config import Transport
from wcms.agent.errors import (
    AgentError,
    DuplicateMachine,
    ServerError,
    TransportError,
    WebSocketUnavailable,
)
from wcms.agent.transport import Channel, ChannelContext
from wcms.agent.transport.http import LongPollChannel
from wcms.agent.transport.ws import WebSocketChannel

log = logging.getLogger(__name__)

# In "auto" mode, how long to stay on long-poll before trying the WebSocket again.
FALLBACK_PERIOD_S = 300.0
# A connection that lasted this long was healthy: the next failure starts the backoff
# over even if the server never welcomed this session.
HEALTHY_AFTER_S = 10.0


class Connection:
    """Keeps one channel to the server open, for as long as the agent runs.

    Errors that reconnecting cannot fix (CredentialRevoked, UnknownCredential,
    JournalError...) leave :meth:`run`; the agent decides what they mean.
    """

    def __init__(self, ctx: ChannelContext, *, transport: Transport, backoff: Backoff) -> None:
        self._ctx = ctx
        self._transport = transport
        self._backoff = backoff
        self._long_poll_until = 0.0
        self._leaving = False
        self.channel: Channel | None = None

    async def run(self) -> None:
        """Connect and reconnect for ever."""
        while True:
            delay = await self._attempt(self._next_channel())
            if self._leaving:
                # The agent is stopping and will cancel this task: no reconnect.
                await asyncio.Event().wait()
            if delay > 0:
                log.info("reconnecting in %.1f s", delay)
                await asyncio.sleep(delay)

    async def say_goodbye(self, reason: str) -> None:
        """Tell the server the agent is stopping, over the current channel if any."""
        self._leaving = True
        channel = self.channel
        if channel is not None:
            await channel.say_goodbye(reason)

    def _next_channel(self) -> Channel:
        wants_http = self._transport == "http" or (
            self._transport == "auto" and time.monotonic() < self._long_poll_until
        )
        if not wants_http:
            return WebSocketChannel(self._ctx)
        until = self._long_poll_until if self._transport == "auto" else None
        return LongPollChannel(self._ctx, until=until)

    async def _attempt(self, channel: Channel) -> float:
        """Serve one channel until it ends; returns how long to wait before the next."""
        ready = False

        def on_ready() -> None:
            nonlocal ready
            ready = True
            self._backoff.reset()

        started = time.monotonic()
        self.channel = channel
        try:
            await channel.serve(on_ready)
            return 0.0
        except WebSocketUnavailable as exc:
            if self._transport != "auto":
                log.warning("%s", exc)
                return self._backoff.next_delay()
            log.warning("%s; using HTTP long-poll for %d s", exc, FALLBACK_PERIOD_S)
            self._long_poll_until = time.monotonic() + FALLBACK_PERIOD_S
            return 0.0
        except DuplicateMachine as exc:
            log.error(
                "another live agent already uses machine id %s (%s): this is usually a "
                "cloned disk image. Start this agent with --machine-id, or give the clone "
                "its own OS machine id (and delete its credential.json); retrying slowly",
                self._ctx.machine_id,
                exc,
            )
            return self._backoff.longest_delay()
        except (TransportError, ServerError) as exc:
            if self._leaving:
                return 0.0
            self._after_failure(channel, ready=ready)
            if time.monotonic() - started > HEALTHY_AFTER_S:
                self._backoff.reset()
            log.warning("%s connection: %s", "lost" if ready else "failed", _text(exc))
            return self._backoff.next_delay()
        finally:
            self.channel = None

    def _after_failure(self, channel: Channel, *, ready: bool) -> None:
        # A long-poll fallback that never got through means the server itself is
        # unreachable, not the WebSocket: go back to trying the WebSocket first.
        if isinstance(channel, LongPollChannel) and not ready and self._transport == "auto":
            self._long_poll_until = 0.0


def _text(exc: AgentError) -> str:
    return str(exc) or type(exc).__name__

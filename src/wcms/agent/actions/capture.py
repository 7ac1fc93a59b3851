"""Collecting a command's output and exit without letting the output grow unbounded."""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Callable

from wcms.agent.progress import Stream

STDOUT = 1
STDERR = 2


class OutputCapture:
    """Keeps the first ``limit`` bytes fed to it and notes whether more came."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True


class CommandProtocol(asyncio.SubprocessProtocol):
    """Receives a command's output as it comes (discarding past the limit, so the
    command never blocks on a full pipe) and signals its exit.

    ``exited`` is set when the shell exits, ``closed`` once its output pipes are closed
    too; a process the command left in the background can hold them open long after.
    """

    def __init__(
        self, limit: int, *, on_output: Callable[[Stream, str], None] | None = None
    ) -> None:
        self.stdout = OutputCapture(limit)
        self.stderr = OutputCapture(limit)
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()
        # Live output, decoded as it comes: (stream name, text).
        self._on_output = on_output
        self._decoders = {
            fd: codecs.getincrementaldecoder("utf-8")(errors="replace") for fd in (STDOUT, STDERR)
        }

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        (self.stderr if fd == STDERR else self.stdout).feed(data)
        if self._on_output is not None and fd in self._decoders:
            text = self._decoders[fd].decode(data)
            if text:
                self._on_output("stderr" if fd == STDERR else "stdout", text)

    def process_exited(self) -> None:
        self.exited.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of a secret value replaced by ``***``."""
    # Longest first, so that a secret containing another is masked whole.
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text

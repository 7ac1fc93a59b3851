"""A program's console: the log file its stdout and stderr are appended to.

The program writes the file itself (opened ``O_APPEND``), so its output is kept while
no agent runs and nothing it writes ever blocks on the agent. The agent reads the tail
for ``console()`` and the exit record, tails it while someone follows it or while the
program is starting (its ready line), and keeps it bounded: past ``CAP_BYTES`` only the
last ``KEEP_BYTES`` stay. Cutting the head is safe because every write of the program
lands at the end of the file, wherever that is now.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

CAP_BYTES = 4 * 1024 * 1024
KEEP_BYTES = 1024 * 1024
FOLLOW_POLL_S = 0.25
# Read backwards in chunks of this size for the last lines.
_CHUNK = 64 * 1024
# At most this much new output is read at once (the rest at the next look).
_READ_MAX = 1024 * 1024

Decode = Callable[[bytes], str]


class ConsoleLog:
    def __init__(self, path: Path, *, decode: Decode) -> None:
        self.path = path
        self.decode = decode

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def tail(self, lines: int) -> list[str]:
        """The last ``lines`` lines (without their line ends)."""
        if lines <= 0:
            return []
        try:
            with self.path.open("rb") as file:
                end = file.seek(0, os.SEEK_END)
                start = end
                data = b""
                while start > 0 and data.count(b"\n") <= lines:
                    start = max(0, start - _CHUNK)
                    file.seek(start)
                    data = file.read(end - start)
        except OSError:
            return []
        found = self.decode(data).splitlines()
        if start > 0:
            found = found[1:]  # the first is cut
        return found[-lines:]

    def read_from(self, offset: int) -> tuple[bytes, int]:
        """Output written since ``offset``, and the offset to read from next. After a
        cut of the head, what was at ``offset`` is gone: reading goes on from the end."""
        try:
            with self.path.open("rb") as file:
                end = file.seek(0, os.SEEK_END)
                if end < offset:
                    return b"", end
                file.seek(offset)
                data = file.read(min(end - offset, _READ_MAX))
        except OSError:
            return b"", offset
        return data, offset + len(data)

    def cap(self, *, limit: int = CAP_BYTES, keep: int = KEEP_BYTES) -> bool:
        """Cut the head once the file is past ``limit``: the last ``keep`` bytes stay,
        from a line start. True if it was cut. What the program writes between the
        copy and the cut is lost: a few lines, once per ``limit - keep`` of output."""
        if self.size() <= limit:
            return False
        try:
            with self.path.open("r+b") as file:
                end = file.seek(0, os.SEEK_END)
                file.seek(max(0, end - keep))
                kept = file.read(keep)
                newline = kept.find(b"\n")
                if 0 <= newline < len(kept) - 1:
                    kept = kept[newline + 1 :]
                file.seek(0)
                file.write(kept)
                file.truncate(len(kept))
        except OSError:
            return False
        return True

    def follow(self, *, offset: int | None = None, poll_s: float = FOLLOW_POLL_S) -> Follower:
        """Each line written from ``offset`` on (None: from now), as it comes."""
        return Follower(self, offset=offset, poll_s=poll_s)


class Follower:
    """The lines of a console as they are written: the file is looked at every
    ``poll_s`` while the caller iterates, and not at all otherwise. ``offset`` is where
    the line after the last one given starts: a new follower from there misses no line
    and repeats none (unless the head was cut meanwhile)."""

    def __init__(self, log: ConsoleLog, *, offset: int | None, poll_s: float) -> None:
        size = log.size()
        self._log = log
        self._poll_s = poll_s
        self._resumed = offset is not None and offset <= size
        self.offset = offset if offset is not None and self._resumed else size
        self._lines: AsyncIterator[str] | None = None

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> str:
        if self._lines is None:
            self._lines = self._read()
        return await anext(self._lines)

    async def aclose(self) -> None:
        if self._lines is not None:
            await self._lines.aclose()  # type: ignore[attr-defined]

    async def _read(self) -> AsyncIterator[str]:
        read_at = self.offset
        pending = b""
        if not self._resumed:
            await asyncio.sleep(self._poll_s)
        while True:
            data, next_at = self._log.read_from(read_at)
            if next_at < read_at:  # the head was cut: go on from the new end
                self.offset, pending = next_at, b""
            read_at = next_at
            if not data:
                await asyncio.sleep(self._poll_s)
                continue
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                self.offset += len(line) + 1
                yield self._log.decode(line).rstrip("\r")


class LineScanner:
    """Looks for a regex in the output a program writes from a point on (its ready
    line while it starts)."""

    def __init__(self, console: ConsoleLog, *, offset: int) -> None:
        self._console = console
        self._offset = offset
        self._pending = b""

    def scan(self, pattern: re.Pattern[str]) -> bool:
        """Whether a complete line written since the last scan matches ``pattern``."""
        data, self._offset = self._console.read_from(self._offset)
        if not data:
            return False
        self._pending += data
        *complete, self._pending = self._pending.split(b"\n")
        return any(pattern.search(self._console_line(line)) for line in complete)

    def _console_line(self, line: bytes) -> str:
        return self._console.decode(line).rstrip("\r")

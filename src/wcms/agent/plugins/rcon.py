"""Source RCON (Valve's protocol, also spoken by Minecraft, ARK, Rust and others).

A packet is a little-endian int32 size, then the request id, the type and the body,
ended by two NULs. The client authenticates once per connection (``SERVERDATA_AUTH``;
the answer's id is -1 for a wrong password) and keeps the connection for the next
calls. A long answer comes in several packets, so each command is followed by an
empty ``SERVERDATA_RESPONSE_VALUE``: the server answers it after the last part of the
command's answer, which marks the end. Minecraft answers that probe with "Unknown
request 0" (still under the probe's id), some servers never answer it: after a short
quiet the answer is taken as complete. Packets under any other id are leftovers of an
earlier exchange and are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from dataclasses import dataclass

from wcms.agent.plugins.base import GamePlugin, PluginError, ProbeResult, Unsupported
from wcms.protocol.programs import ProbeUrl

SERVERDATA_AUTH = 3
SERVERDATA_AUTH_RESPONSE = 2
SERVERDATA_EXECCOMMAND = 2
SERVERDATA_RESPONSE_VALUE = 0

_HEADER = struct.Struct("<iii")
# Source caps a packet at 4 KiB; some games (Rust, modded servers) send more.
MAX_PACKET_BYTES = 1 << 20
# Past this an answer is cut: what is kept is only shown to a person.
MAX_ANSWER_BYTES = 1 << 20
_MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class RconGame:
    """How one game's console is driven over RCON.

    ``announce`` holds ``{text}``; a command that is ``None`` is one the game lacks.
    ``quiet_s`` is how long to wait for more of an answer once part of it came, for
    servers that never answer the end-of-answer probe.
    """

    probe: str = ""
    save: str | None = None
    announce: str | None = "say {text}"
    shutdown: str | None = "quit"
    quiet_s: float = 1.0


RCON_GAMES: dict[str, RconGame] = {
    "minecraft": RconGame(
        probe="list", save="save-all", announce="say {text}", shutdown="stop", quiet_s=0.3
    ),
    "ark": RconGame(
        probe="ListPlayers", save="SaveWorld", announce="ServerChat {text}", shutdown="DoExit"
    ),
    "source": RconGame(),
}

_MINECRAFT_LIST = re.compile(
    r"There are (\d+)(?: of a max of | ?/ ?)(\d+) players online", re.IGNORECASE
)
_ARK_PLAYER = re.compile(r"^\s*\d+\.\s+\S", re.MULTILINE)


def players_in(answer: str) -> tuple[int | None, int | None]:
    """Players (and the maximum) in a player-list answer: Minecraft's ``list``
    ("There are 2 of a max of 20 players online"), ARK's ``ListPlayers`` (one
    numbered line per player); ``(None, None)`` for anything else."""
    match = _MINECRAFT_LIST.search(answer)
    if match:
        return int(match.group(1)), int(match.group(2))
    if "No Players Connected" in answer:
        return 0, None
    found = len(_ARK_PLAYER.findall(answer))
    return (found, None) if found else (None, None)


class _Unanswered(ConnectionError):
    """The connection ended before any of the answer came: the game did not see the
    command, which may be sent again on a new connection."""


class RconConnection:
    """One authenticated RCON connection; one exchange at a time."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, quiet_s: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._quiet_s = quiet_s
        self._last_id = 0

    @classmethod
    async def open(cls, host: str, port: int, password: str, *, quiet_s: float) -> RconConnection:
        reader, writer = await asyncio.open_connection(host, port)
        connection = cls(reader, writer, quiet_s=quiet_s)
        try:
            await connection._authenticate(password)
        except BaseException:
            connection.close()
            raise
        return connection

    async def exchange(self, text: str) -> str:
        """Run one command; its answer, every part of it, decoded as UTF-8."""
        command_id, probe_id = self._next_id(), self._next_id()
        if self._reader.at_eof():
            raise _Unanswered("the connection was closed")
        try:
            self._send(command_id, SERVERDATA_EXECCOMMAND, text.encode(errors="replace"))
            self._send(probe_id, SERVERDATA_RESPONSE_VALUE, b"")
            await self._writer.drain()
        except ConnectionError as exc:
            raise _Unanswered("the connection was closed") from exc
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                packet_id, _, body = await self._read(quiet_s=self._quiet_s if parts else None)
            except TimeoutError:
                break  # part of the answer came, then silence: the probe goes unanswered
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if not parts:
                    raise _Unanswered("the connection was closed") from exc
                raise
            if packet_id == -1:
                raise PluginError("RCON refused the command: not authenticated")
            if packet_id == probe_id:
                break
            if packet_id == command_id and size < MAX_ANSWER_BYTES:
                parts.append(body[: MAX_ANSWER_BYTES - size])
                size += len(parts[-1])
        # Joined before decoding: Minecraft cuts at 4096 bytes, inside a character.
        return b"".join(parts).decode("utf-8", errors="replace")

    def close(self) -> None:
        self._writer.close()

    async def _authenticate(self, password: str) -> None:
        auth_id = self._next_id()
        self._send(auth_id, SERVERDATA_AUTH, password.encode())
        await self._writer.drain()
        while True:
            # Source servers send an empty RESPONSE_VALUE first; Minecraft does not.
            packet_id, packet_type, _ = await self._read()
            if packet_type != SERVERDATA_AUTH_RESPONSE:
                continue
            if packet_id == -1:
                raise PluginError("RCON password refused")
            if packet_id == auth_id:
                return

    def _next_id(self) -> int:
        self._last_id = self._last_id % (_MAX_ID - 1) + 1
        return self._last_id

    def _send(self, packet_id: int, packet_type: int, body: bytes) -> None:
        if b"\x00" in body:
            raise PluginError("an RCON command cannot hold a NUL character")
        self._writer.write(_HEADER.pack(len(body) + 10, packet_id, packet_type) + body + b"\0\0")

    async def _read(self, *, quiet_s: float | None = None) -> tuple[int, int, bytes]:
        """The next packet; ``TimeoutError`` if none starts within ``quiet_s``.

        Only the wait for the size is timed: ``readexactly`` takes nothing from the
        stream until it has it all, so a timeout there leaves the stream whole."""
        header = self._reader.readexactly(4)
        (size,) = struct.unpack("<i", await asyncio.wait_for(header, quiet_s))
        if not 10 <= size <= MAX_PACKET_BYTES:
            raise PluginError(f"RCON sent a packet of {size} bytes: not an RCON server?")
        data = await self._reader.readexactly(size)
        packet_id, packet_type = struct.unpack_from("<ii", data)
        return packet_id, packet_type, data[8:].rstrip(b"\0")


class RconPlugin(GamePlugin):
    """A game's console over RCON: probes are an authenticated round trip."""

    scheme = "rcon"
    has_console = True

    def __init__(
        self, probe: ProbeUrl, *, timeout_s: float = 5.0, game: RconGame | None = None
    ) -> None:
        super().__init__(probe, timeout_s=timeout_s)
        self.game = game or RCON_GAMES["source"]
        self._connection: RconConnection | None = None
        self._lock = asyncio.Lock()

    async def probe(self) -> ProbeResult:
        try:
            answer = await self.command(self.game.probe)
        except PluginError as exc:
            return ProbeResult(ok=False, detail=str(exc))
        players, max_players = players_in(answer)
        return ProbeResult(ok=True, players=players, max_players=max_players)

    async def command(self, text: str) -> str:
        return await self._call(text)

    async def save(self) -> None:
        await self.command(self._game_command("save", self.game.save))

    async def announce(self, text: str) -> None:
        template = self._game_command("announce", self.game.announce)
        # One line: a newline or ';' could end the command and start another.
        await self.command(template.format(text=re.sub(r"[\r\n;]+", " ", text).strip()))

    async def shutdown(self, *, wait_s: int, message: str) -> None:
        """Say ``message``, then send the stop command; ``wait_s`` is not RCON's to
        keep (the stop sequence counts down before it)."""
        command = self._game_command("shutdown", self.game.shutdown)
        if message and self.game.announce:
            await self.announce(message)
        await self._call(command, may_close=True)

    async def close(self) -> None:
        self._drop()

    def _game_command(self, what: str, command: str | None) -> str:
        if command is None:
            raise Unsupported(f"this game has no RCON command to {what}")
        return command

    async def _call(self, text: str, *, may_close: bool = False) -> str:
        """One exchange, within ``timeout_s`` (the wait for the lock included).

        A failure drops the connection: half an answer may still be on its way."""
        try:
            async with self._lock, asyncio.timeout(self.timeout_s):
                return await self._exchange(text)
        except PluginError as exc:
            self._drop()
            raise type(exc)(f"{exc} ({self.where})") from None
        except (OSError, EOFError, TimeoutError) as exc:
            self._drop()
            if may_close and isinstance(exc, EOFError | ConnectionError):
                return ""  # the game went down as asked, before it answered
            raise PluginError(f"RCON at {self.where}: {self.reason(exc)}") from None
        except BaseException:
            self._drop()
            raise

    async def _exchange(self, text: str) -> str:
        if self._connection is not None:
            try:
                return await self._connection.exchange(text)
            except _Unanswered:
                # The kept connection was closed by the game (a restart): once more on a
                # new one.
                self._drop()
        password = self.target.password or ""
        self._connection = await RconConnection.open(
            self.target.host, self.target.port, password, quiet_s=self.game.quiet_s
        )
        return await self._connection.exchange(text)

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(RuntimeError):  # the event loop is already closed
                self._connection.close()
            self._connection = None

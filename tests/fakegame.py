"""A fake game server for tests: one process that speaks what real game servers do.

Run as ``python tests/fakegame.py --rcon-port P --a2s-port P --slp-port P --rest-port P``
(each protocol optional):

- Source RCON (answers past 4096 bytes come in several packets; ``--minecraft`` has
  Minecraft's ways: no empty packet before the auth answer, "Unknown request 0" for the
  empty end-of-answer probe, or no answer at all with ``--rcon-silent-probe``);
- A2S_INFO over UDP, with the 2020 challenge step under ``--a2s-challenge``;
- Minecraft's Server List Ping (status JSON with players online and the maximum);
- a Palworld-like REST API under ``/v1/api/`` with HTTP Basic auth (user ``admin``).

Its console is stdin, and RCON runs the same commands: ``crash`` (exit 1), ``hang`` (no
probe of any kind is answered, the process runs on), ``unhang``, ``stop`` (also ARK's
``DoExit`` and Source's ``quit``: the stop line, then exit 0; only logged under
``--ignore-stop``), ``ignore-sigterm`` (a toggle), ``grow MB``, ``players N``, ``say
TEXT``, ``save``/``save-all``/``SaveWorld``, ``echo TEXT``, ``list`` (Minecraft's
answer), ``ListPlayers`` (ARK's), ``long N`` (N bytes), ``wide N`` (N two-byte
characters after an "a"), ``spam N RATE`` (prints ``spam I/N`` for I from 1 to N, RATE
lines a second: a console that floods).

Every command that changes something (not the read-only ``list``, ``ListPlayers`` and
empty probes) is printed and appended to ``--log FILE``, one line each, as are REST
calls (``announce TEXT``, ``save``, ``shutdown S TEXT``), ``sigterm``, and ``started
PID`` at each start: a test can check a stop sequence's order and count the starts.
Lines are flushed as they are printed, for a supervisor reading the console.

The bottom of the file is :class:`FakeGame`, which runs it for a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

STOP_LINE = "Stopping the server"
READY_LINE = 'Done (1.23s)! For help, type "help"'
A2S_PREFIX = b"\xff\xff\xff\xffTSource Engine Query\x00"
A2S_CHALLENGE = b"\x0b\xad\xf0\x0d"
RCON_SPLIT = 4096
# Commands that only read: probes send them every few seconds.
QUIET_COMMANDS = {"", "list", "ListPlayers"}


class Game:
    """The game's state, and its console."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.players = args.players
        self.max_players = args.max_players
        self.ignore_sigterm = args.ignore_sigterm
        self.unhung = asyncio.Event()
        self.unhung.set()
        self.memory: list[bytes] = []
        self.child: subprocess.Popen[bytes] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.started = time.monotonic()
        self.log: TextIO | None = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115

    @property
    def hung(self) -> bool:
        return not self.unhung.is_set()

    def print(self, line: str) -> None:
        # A game outlives whoever read its console (an agent killed): it runs on.
        with contextlib.suppress(OSError):
            print(line, flush=True)

    def record(self, entry: str) -> None:
        self.print(f"command: {entry}")
        if self.log is not None:
            self.log.write(entry + "\n")
            self.log.flush()

    def execute(self, line: str) -> str:
        """Run one console command; its answer."""
        line = line.strip()
        if line not in QUIET_COMMANDS:
            self.record(line)
        word, _, rest = line.partition(" ")
        match word:
            case "crash":
                self.exit(1, "Crashing on purpose")
            case "hang":
                self.unhung.clear()
                return "Hanging"
            case "unhang":
                self.unhung.set()
                return "Answering again"
            case "stop" | "DoExit" | "quit":
                if self.args.ignore_stop:
                    return "Not stopping"
                self.stop_soon(0)  # prints the stop line
                return ""
            case "ignore-sigterm":
                self.ignore_sigterm = not self.ignore_sigterm
                return f"Ignoring SIGTERM: {self.ignore_sigterm}"
            case "grow":
                self.memory.append(b"\x01" * (int(rest) << 20))
                return f"Holding {sum(map(len, self.memory)) >> 20} MB"
            case "players":
                self.players = int(rest)
                return f"{self.players} players online"
            case "say" | "ServerChat":
                return ""
            case "save" | "save-all" | "SaveWorld":
                return "Saved the game"
            case "echo":
                return rest
            case "list":
                return f"There are {self.players} of a max of {self.max_players} players online: "
            case "ListPlayers":
                listed = (f"{i}. player{i}, 7656119{i:010d}" for i in range(self.players))
                return "\n".join(listed) or "No Players Connected"
            case "long":
                return ("0123456789" * (int(rest) // 10 + 1))[: int(rest)]
            case "wide":
                return "a" + "é" * int(rest)
            case "spam":
                count, _, rate = rest.partition(" ")
                task = asyncio.get_running_loop().create_task(
                    self.spam(int(count), float(rate or 1000))
                )
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                return ""
            case "":
                return ""
        return f"Unknown command: {word}"

    async def spam(self, count: int, rate: float) -> None:
        """Print ``spam I/COUNT`` for I from 1 to ``count``, ``rate`` lines a second (in
        batches every 10 ms, catching up if the loop was late)."""
        start = time.monotonic()
        done = 0
        while done < count:
            due = min(count, int((time.monotonic() - start) * rate) + 1)
            if due > done:
                self.print("\n".join(f"spam {i}/{count}" for i in range(done + 1, due + 1)))
                done = due
            await asyncio.sleep(0.01)

    def stop_soon(self, wait_s: float) -> None:
        """Stop as a game does: the stop line, then exit 0 (after an answer is sent)."""
        loop = asyncio.get_running_loop()
        loop.call_later(wait_s, self.print, self.args.stop_line)
        loop.call_later(wait_s + 0.1, self.exit, 0, None)

    def exit(self, code: int, line: str | None) -> None:
        if line:
            self.print(line)
        if code == 0 and self.child is not None:
            self.child.kill()
        sys.stdout.flush()
        os._exit(code)

    def on_sigterm(self) -> None:
        if self.ignore_sigterm:
            self.record("sigterm ignored")
            return
        self.record("sigterm")
        # Die of the signal itself, as a game without a handler would.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


# --- RCON -------------------------------------------------------------------------


def rcon_packet(packet_id: int, packet_type: int, body: bytes) -> bytes:
    return struct.pack("<iii", len(body) + 10, packet_id, packet_type) + body + b"\0\0"


def rcon_handler(game: Game) -> Any:
    args = game.args

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        authed = False
        game.print("RCON connection opened")
        try:
            while True:
                (size,) = struct.unpack("<i", await reader.readexactly(4))
                data = await reader.readexactly(size)
                packet_id, packet_type = struct.unpack_from("<ii", data)
                body = data[8:-2]
                if game.hung:
                    continue
                if packet_type == 3:
                    authed = body.decode(errors="replace") == args.rcon_password
                    if not args.minecraft:
                        writer.write(rcon_packet(packet_id, 0, b""))
                    writer.write(rcon_packet(packet_id if authed else -1, 2, b""))
                elif not authed:
                    writer.write(rcon_packet(-1, 2, b""))
                elif packet_type == 2:
                    if args.rcon_noise:
                        writer.write(rcon_packet(packet_id + 1000, 0, b"noise"))
                    answer = game.execute(body.decode("utf-8", errors="replace")).encode()
                    for start in range(0, max(len(answer), 1), RCON_SPLIT):
                        writer.write(rcon_packet(packet_id, 0, answer[start : start + RCON_SPLIT]))
                elif packet_type == 0 and not args.rcon_silent_probe:
                    if args.minecraft:
                        writer.write(rcon_packet(packet_id, 0, b"Unknown request 0"))
                    else:
                        # srcds mirrors the empty packet, then sends this one too.
                        writer.write(rcon_packet(packet_id, 0, b""))
                        writer.write(rcon_packet(packet_id, 0, b"\x00\x01\x00\x00"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle


# --- A2S --------------------------------------------------------------------------


def cstring(text: str) -> bytes:
    return text.encode() + b"\0"


class A2sServer(asyncio.DatagramProtocol):
    def __init__(self, game: Game) -> None:
        self.game = game
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.game.hung or not data.startswith(A2S_PREFIX) or self.transport is None:
            return
        if self.game.args.a2s_challenge and data[len(A2S_PREFIX) :] != A2S_CHALLENGE:
            self.transport.sendto(b"\xff\xff\xff\xffA" + A2S_CHALLENGE, addr)
            return
        game = self.game
        info = (
            b"\xff\xff\xff\xffI\x11"
            + cstring(game.args.name)
            + cstring("de_fake")
            + cstring("fake")
            + cstring("Fake Game")
            + struct.pack("<HBBB", 0, min(game.players, 255), min(game.max_players, 255), 0)
            + b"dl\x00\x00"
            + cstring("1.0.0")
            + b"\x00"
        )
        self.transport.sendto(info, addr)


# --- Server List Ping -------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


async def read_varint(reader: asyncio.StreamReader) -> int:
    value = 0
    for shift in range(0, 35, 7):
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
    raise ValueError("varint too long")


def slp_handler(game: Game) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshaken = False
        try:
            while True:
                packet = await reader.readexactly(await read_varint(reader))
                if game.hung:
                    continue
                if not handshaken:
                    handshaken = True  # packet 0: version, address, next state
                    continue
                if packet[:1] == b"\x00":
                    status = {
                        "version": {"name": "1.20.4", "protocol": 765},
                        "players": {"max": game.max_players, "online": game.players},
                        "description": {"text": game.args.name},
                    }
                    text = json.dumps(status).encode()
                    payload = b"\x00" + varint(len(text)) + text
                else:
                    payload = packet  # ping: the same long back
                writer.write(varint(len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    return handle


# --- Palworld REST ----------------------------------------------------------------


def rest_app(game: Game) -> web.Application:
    args = game.args

    @web.middleware
    async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
        await game.unhung.wait()
        if request.path.startswith("/v1/api/"):
            scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
            try:
                password = base64.b64decode(encoded).decode().partition(":")[2]
            except ValueError:
                password = None
            if scheme.lower() != "basic" or password != args.rest_password:
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        response: web.StreamResponse = await handler(request)
        return response

    async def body(request: web.Request) -> dict[str, Any]:
        try:
            found = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="not JSON") from None
        if not isinstance(found, dict):
            raise web.HTTPBadRequest(text="not an object")
        return found

    async def root(request: web.Request) -> web.Response:
        return web.Response(text="fake game")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPServiceUnavailable(text="down")

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {"version": "v0.3.4", "servername": args.name, "description": "", "worldguid": "0"}
        )

    async def players(request: web.Request) -> web.Response:
        found = [
            {"name": f"player{i}", "playerId": str(i), "userId": f"steam_{i}", "level": 1}
            for i in range(game.players)
        ]
        return web.json_response({"players": found})

    async def settings(request: web.Request) -> web.Response:
        return web.json_response({"ServerName": args.name, "ServerPlayerMaxNum": game.max_players})

    async def metrics(request: web.Request) -> web.Response:
        if args.rest_no_metrics:
            raise web.HTTPNotFound()
        return web.json_response(
            {
                "serverfps": 60,
                "currentplayernum": game.players,
                "serverframetime": 16.6,
                "maxplayernum": game.max_players,
                "uptime": int(time.monotonic() - game.started),
                "days": 1,
            }
        )

    async def announce(request: web.Request) -> web.Response:
        game.record(f"announce {(await body(request))['message']}")
        return web.Response(text="OK")

    async def save(request: web.Request) -> web.Response:
        game.record("save")
        return web.Response(text="OK")

    async def shutdown(request: web.Request) -> web.Response:
        found = await body(request)
        wait_s = int(found["waittime"])
        game.record(f"shutdown {wait_s} {found.get('message', '')}".rstrip())
        game.stop_soon(wait_s)
        return web.Response(text="OK")

    async def stop(request: web.Request) -> web.Response:
        game.record("stop")
        game.stop_soon(0)
        return web.Response(text="OK")

    app = web.Application(middlewares=[gate])
    app.add_routes(
        [
            web.get("/", root),
            web.get("/redirect", redirect),
            web.get("/down", missing),
            web.get("/v1/api/info", info),
            web.get("/v1/api/players", players),
            web.get("/v1/api/settings", settings),
            web.get("/v1/api/metrics", metrics),
            web.post("/v1/api/announce", announce),
            web.post("/v1/api/save", save),
            web.post("/v1/api/shutdown", shutdown),
            web.post("/v1/api/stop", stop),
        ]
    )
    return app


# --- the process ------------------------------------------------------------------


def read_console(game: Game, loop: asyncio.AbstractEventLoop) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(console, game, line)


def console(game: Game, line: str) -> None:
    answer = game.execute(line)
    if answer:
        game.print(answer)


async def serve(args: argparse.Namespace) -> None:
    game = Game(args)
    loop = asyncio.get_running_loop()
    game.print(f"Starting fake game server, pid {os.getpid()}")
    game.record(f"started {os.getpid()}")
    if sys.platform == "win32":
        signal.signal(signal.SIGBREAK, lambda *_: loop.call_soon_threadsafe(game.on_sigterm))
    else:
        loop.add_signal_handler(signal.SIGTERM, game.on_sigterm)
    host = args.host
    if args.rcon_port:
        await asyncio.start_server(rcon_handler(game), host, args.rcon_port)
    if args.slp_port:
        await asyncio.start_server(slp_handler(game), host, args.slp_port)
    if args.a2s_port:
        await loop.create_datagram_endpoint(
            lambda: A2sServer(game), local_addr=(host, args.a2s_port)
        )
    if args.rest_port:
        runner = web.AppRunner(rest_app(game), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, args.rest_port).start()
    if args.spawn_child:
        game.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        game.print(f"child pid {game.child.pid}")
    if args.crash_after is not None:
        loop.call_later(args.crash_after, game.exit, 1, "Crashing after a while")
    if args.exit_after is not None:
        loop.call_later(args.exit_after, game.exit, 0, "Exiting after a while")
    threading.Thread(target=read_console, args=(game, loop), daemon=True).start()
    await asyncio.sleep(args.ready_delay)
    game.print(args.ready_line)
    await asyncio.Event().wait()


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A fake game server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rcon-port", type=int)
    parser.add_argument("--a2s-port", type=int)
    parser.add_argument("--slp-port", type=int)
    parser.add_argument("--rest-port", type=int)
    parser.add_argument("--rcon-password", default="rcon-secret")
    parser.add_argument("--rest-password", default="rest-secret")
    parser.add_argument("--minecraft", action="store_true", help="RCON as Minecraft speaks it")
    parser.add_argument("--rcon-silent-probe", action="store_true")
    parser.add_argument("--rcon-noise", action="store_true", help="a stray packet per answer")
    parser.add_argument("--a2s-challenge", action="store_true")
    parser.add_argument("--rest-no-metrics", action="store_true")
    parser.add_argument("--name", default="Fake Server")
    parser.add_argument("--players", type=int, default=0)
    parser.add_argument("--max-players", type=int, default=20)
    parser.add_argument("--ready-line", default=READY_LINE)
    parser.add_argument("--ready-delay", type=float, default=0.0)
    parser.add_argument("--stop-line", default=STOP_LINE)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--ignore-stop", action="store_true", help="log stop, stay up")
    parser.add_argument("--crash-after", type=float)
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--spawn-child", action="store_true")
    parser.add_argument("--log", help="append each command received to this file")
    return parser.parse_args(argv)


def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse()))


# --- for tests --------------------------------------------------------------------

PROGRAM = Path(__file__).resolve()


def free_port() -> int:
    """A port free for both TCP and UDP, below the ephemeral range."""
    for _ in range(200):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        try:
            with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


class FakeGame:
    """A fakegame.py process on free ports of 127.0.0.1, its output in a file."""

    def __init__(
        self,
        workdir: Path,
        *,
        protocols: Sequence[str] = ("rcon", "a2s", "slp", "rest"),
        args: Sequence[str] = (),
        rcon_password: str = "rcon-secret",
        rest_password: str = "rest-secret",
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in protocols}
        self.rcon_password = rcon_password
        self.rest_password = rest_password
        self.extra = list(args)
        self.output_path = workdir / "fakegame.out"
        self.log_path = workdir / "fakegame.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        ports = [arg for name, port in self.ports.items() for arg in (f"--{name}-port", str(port))]
        return [
            sys.executable,
            str(PROGRAM),
            *ports,
            "--rcon-password",
            self.rcon_password,
            "--rest-password",
            self.rest_password,
            "--log",
            str(self.log_path),
            *self.extra,
        ]

    def start(self, *, timeout: float = 15) -> FakeGame:
        with open(self.output_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"fakegame exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"fakegame not ready after {timeout}s:\n{self.output()}")
            time.sleep(0.02)
        return self

    def console(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()

    def restart(self) -> FakeGame:
        self.kill()
        self.output_path.write_bytes(b"")
        return self.start()

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def commands(self) -> list[str]:
        """What it was told to do, in order (without its "started" lines)."""
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        return [line for line in lines if not line.startswith("started ")]

    def url(self, scheme: str, path: str = "") -> str:
        """A probe URL for it: ``rcon``, ``a2s``, ``minecraft``, ``palworld``, ``http``
        (the REST port, ``path`` on it) or ``tcp`` (the RCON port)."""
        protocol = {"minecraft": "slp", "palworld": "rest", "http": "rest", "tcp": "rcon"}
        port = self.ports[protocol.get(scheme, scheme)]
        if scheme == "rcon":
            return f"rcon://:{self.rcon_password}@127.0.0.1:{port}"
        if scheme == "palworld":
            return f"palworld://admin:{self.rest_password}@127.0.0.1:{port}"
        return f"{scheme}://127.0.0.1:{port}{path}"

    def __enter__(self) -> FakeGame:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


if __name__ == "__main__":
    main()

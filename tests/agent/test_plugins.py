"""Game plugins against a real fake game server (tests/fakegame.py) over real sockets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakegame import STOP_LINE, FakeGame, free_port
from wcms.agent.plugins import GamePlugin, PluginError, Unsupported, plugin_for
from wcms.agent.plugins.rcon import players_in
from wcms.protocol.programs import parse_probe_url

pytestmark = pytest.mark.anyio

TIMEOUT_S = 2.0
EVERY_PROBE = ("rcon", "a2s", "minecraft", "palworld", "http", "tcp")


def plugin(url: str, *, timeout_s: float = TIMEOUT_S, preset: str | None = None) -> GamePlugin:
    return plugin_for(parse_probe_url(url), timeout_s=timeout_s, preset=preset)


@pytest.fixture(scope="module")
def game(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGame]:
    """One fake game for the tests that change nothing in it."""
    workdir = tmp_path_factory.mktemp("game")
    with FakeGame(workdir, args=["--players", "3", "--max-players", "16"]) as game:
        yield game


@pytest.fixture
def own_game(tmp_path: Path) -> Iterator[list[FakeGame]]:
    """Fake games for one test (started by the test, with its flags)."""
    games: list[FakeGame] = []
    yield games
    for one in games:
        one.kill()


def start(games: list[FakeGame], tmp_path: Path, *args: str) -> FakeGame:
    game = FakeGame(tmp_path / f"game{len(games)}", args=args)
    games.append(game)
    return game.start()


def wait_exit(game: FakeGame, timeout: float = 10) -> int:
    assert game.proc is not None
    return game.proc.wait(timeout=timeout)


# --- RCON -------------------------------------------------------------------------


async def test_rcon_probe_is_an_authenticated_round_trip_with_the_player_list(
    game: FakeGame,
) -> None:
    async with plugin(game.url("rcon"), preset="minecraft") as rcon:
        result = await rcon.probe()
    assert (result.ok, result.players, result.max_players) == (True, 3, 16)


async def test_rcon_refuses_a_wrong_password_without_showing_it(game: FakeGame) -> None:
    url = game.url("rcon").replace(game.rcon_password, "wrong-pass")
    async with plugin(url) as rcon:
        result = await rcon.probe()
        assert not result.ok
        assert result.detail is not None and "RCON password refused" in result.detail
        assert "wrong-pass" not in result.detail
        with pytest.raises(PluginError, match="RCON password refused"):
            await rcon.command("echo hi")


async def test_rcon_reassembles_an_answer_split_in_packets(game: FakeGame) -> None:
    async with plugin(game.url("rcon")) as rcon:
        answer = await rcon.command("long 10000")
        assert answer == ("0123456789" * 1000)
        # 4096 bytes cut a two-byte character in half: joined before decoding.
        assert await rcon.command("wide 5000") == "a" + "é" * 5000
        assert await rcon.command("echo after") == "after"


async def test_rcon_keeps_one_connection_and_drops_packets_of_other_requests(
    own_game: list[FakeGame], tmp_path: Path
) -> None:
    game = start(own_game, tmp_path, "--rcon-noise")
    async with plugin(game.url("rcon")) as rcon:
        # Each answer is preceded by a stray packet, and srcds's mirror packet of the
        # previous probe arrives before the next answer: neither is part of it.
        for word in ("one", "two", "three"):
            assert await rcon.command(f"echo {word}") == word
    assert game.output().count("RCON connection opened") == 1


async def test_rcon_reconnects_after_the_game_restarts(
    own_game: list[FakeGame], tmp_path: Path
) -> None:
    game = start(own_game, tmp_path)
    async with plugin(game.url("rcon")) as rcon:
        assert await rcon.command("echo before") == "before"
        game.kill()
        down = await rcon.probe()
        assert not down.ok and down.detail is not None and "refused" in down.detail
        game.restart()
        assert await rcon.command("echo after") == "after"
        game.restart()
        # The kept connection is dead: the command goes again on a new one.
        assert await rcon.command("echo again") == "again"


async def test_rcon_speaks_minecraft(own_game: list[FakeGame], tmp_path: Path) -> None:
    game = start(own_game, tmp_path, "--minecraft", "--players", "2", "--max-players", "10")
    async with plugin(game.url("rcon"), preset="minecraft") as rcon:
        probed = await rcon.probe()
        assert (probed.ok, probed.players, probed.max_players) == (True, 2, 10)
        started = time.monotonic()
        assert await rcon.command("long 10000") == "0123456789" * 1000
        assert await rcon.command("wide 3000") == "a" + "é" * 3000
        # "Unknown request 0" ends each answer: no waiting for a quiet.
        assert time.monotonic() - started < 0.5


async def test_rcon_ends_an_answer_after_a_quiet_when_the_probe_is_ignored(
    own_game: list[FakeGame], tmp_path: Path
) -> None:
    game = start(own_game, tmp_path, "--minecraft", "--rcon-silent-probe")
    async with plugin(game.url("rcon"), preset="minecraft") as rcon:
        started = time.monotonic()
        assert await rcon.command("long 9000") == ("0123456789" * 900)
        assert await rcon.command("echo next") == "next"
        assert await rcon.command("say quiet") == ""
        assert time.monotonic() - started < 3 * TIMEOUT_S / 2


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("minecraft", ["say Restart in 5 minutes", "save-all", "say bye", "stop"]),
        ("ark", ["ServerChat Restart in 5 minutes", "SaveWorld", "ServerChat bye", "DoExit"]),
    ],
)
async def test_rcon_stop_sequence_uses_the_game_s_commands(
    own_game: list[FakeGame], tmp_path: Path, preset: str, expected: list[str]
) -> None:
    game = start(own_game, tmp_path, *(["--minecraft"] if preset == "minecraft" else []))
    async with plugin(game.url("rcon"), preset=preset) as rcon:
        # A newline or ';' in an announcement cannot start a second command.
        await rcon.announce("Restart in 5\nminutes")
        await rcon.save()
        await rcon.shutdown(wait_s=0, message="bye")
    assert game.commands() == expected
    assert wait_exit(game) == 0
    assert STOP_LINE in game.output()


async def test_rcon_has_no_save_for_a_source_game(game: FakeGame) -> None:
    async with plugin(game.url("rcon")) as rcon:
        assert rcon.has_console
        with pytest.raises(Unsupported, match="save"):
            await rcon.save()


def test_players_are_read_from_list_answers() -> None:
    assert players_in("There are 2 of a max of 20 players online: a, b") == (2, 20)
    assert players_in("There are 0/8 players online:") == (0, 8)
    assert players_in("0. Alice, 7656\n1. Bob, 7657\n") == (2, None)
    assert players_in("No Players Connected") == (0, None)
    assert players_in("") == (None, None)


# --- A2S and Server List Ping -----------------------------------------------------


async def test_a2s_reads_players_and_the_server_name(game: FakeGame) -> None:
    async with plugin(game.url("a2s")) as a2s:
        result = await a2s.probe()
        assert (result.ok, result.players, result.max_players) == (True, 3, 16)
        assert result.detail == "Fake Server"
        with pytest.raises(Unsupported):
            await a2s.command("status")


async def test_a2s_answers_the_challenge_step(own_game: list[FakeGame], tmp_path: Path) -> None:
    game = start(own_game, tmp_path, "--a2s-challenge", "--players", "5")
    async with plugin(game.url("a2s")) as a2s:
        result = await a2s.probe()
    assert (result.ok, result.players) == (True, 5)


async def test_minecraft_server_list_ping_reads_players(game: FakeGame) -> None:
    async with plugin(game.url("minecraft")) as slp:
        result = await slp.probe()
    assert (result.ok, result.players, result.max_players) == (True, 3, 16)


# --- Palworld REST ----------------------------------------------------------------


async def test_palworld_probe_reads_info_players_and_the_maximum(game: FakeGame) -> None:
    async with plugin(game.url("palworld")) as palworld:
        result = await palworld.probe()
        assert (result.ok, result.players, result.max_players) == (True, 3, 16)
        assert result.detail == "Fake Server"
        metrics = await palworld.metrics()  # type: ignore[attr-defined]
        assert metrics["maxplayernum"] == 16 and metrics["serverfps"] == 60


async def test_palworld_takes_the_maximum_from_settings_without_metrics(
    own_game: list[FakeGame], tmp_path: Path
) -> None:
    game = start(own_game, tmp_path, "--rest-no-metrics", "--max-players", "32")
    async with plugin(game.url("palworld")) as palworld:
        result = await palworld.probe()
    assert (result.ok, result.players, result.max_players) == (True, 0, 32)


async def test_palworld_announces_saves_and_maps_console_words(
    own_game: list[FakeGame], tmp_path: Path
) -> None:
    game = start(own_game, tmp_path)
    async with plugin(game.url("palworld")) as palworld:
        assert palworld.has_console
        await palworld.announce("Restart in 5 minutes")
        await palworld.save()
        assert await palworld.command("announce hello there") == "Announced: hello there"
        assert await palworld.command("save") == "Saved the world"
        with pytest.raises(Unsupported, match="save, announce TEXT, shutdown"):
            await palworld.command("kick somebody")
    assert game.commands() == [
        "announce Restart in 5 minutes",
        "save",
        "announce hello there",
        "save",
    ]


async def test_palworld_shutdown_waits_then_the_game_stops(
    own_game: list[FakeGame], tmp_path: Path
) -> None:
    game = start(own_game, tmp_path)
    async with plugin(game.url("palworld")) as palworld:
        await palworld.shutdown(wait_s=1, message="Back soon")
    started = time.monotonic()
    assert wait_exit(game) == 0
    assert time.monotonic() - started > 0.5
    assert game.commands() == ["shutdown 1 Back soon"]
    assert STOP_LINE in game.output()


async def test_palworld_refused_password_is_clear_and_not_shown(game: FakeGame) -> None:
    url = game.url("palworld").replace(game.rest_password, "wrong-pass")
    async with plugin(url) as palworld:
        result = await palworld.probe()
        assert not result.ok
        assert result.detail == "Palworld REST refused the admin password"
        with pytest.raises(PluginError, match="refused the admin password"):
            await palworld.save()


# --- TCP and HTTP -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "ok", "detail"),
    [
        ("/", True, "HTTP 200"),
        ("/redirect", True, "HTTP 302"),
        ("/down", False, "HTTP 503"),
        ("/v1/api/info", False, "HTTP 401"),
    ],
)
async def test_http_probe_is_ok_on_2xx_and_3xx(
    game: FakeGame, path: str, ok: bool, detail: str
) -> None:
    async with plugin(game.url("http", path)) as http:
        result = await http.probe()
    assert result.ok is ok
    assert result.detail is not None and result.detail.endswith(detail)


async def test_http_probe_sends_url_credentials_and_never_shows_them(game: FakeGame) -> None:
    port = game.ports["rest"]
    good = f"http://admin:{game.rest_password}@127.0.0.1:{port}/v1/api/info"
    async with plugin(good) as http:
        assert (await http.probe()).ok
    bad = f"http://admin:wrong-pass@127.0.0.1:{port}/v1/api/info"
    async with plugin(bad) as http:
        result = await http.probe()
    assert not result.ok and result.detail is not None
    assert "wrong-pass" not in result.detail and "admin:***@" in result.detail


async def test_tcp_probe_connects(game: FakeGame) -> None:
    async with plugin(game.url("tcp")) as tcp:
        assert (await tcp.probe()).ok
    async with plugin(f"tcp://127.0.0.1:{free_port()}") as tcp:
        result = await tcp.probe()
    assert not result.ok and result.detail is not None and "refused" in result.detail


# --- what no game answers ---------------------------------------------------------


async def test_every_probe_of_a_hung_game_fails_within_its_timeout(
    own_game: list[FakeGame], tmp_path: Path
) -> None:
    game = start(own_game, tmp_path)
    plugins = [plugin(game.url(scheme, "/"), timeout_s=0.5) for scheme in EVERY_PROBE]
    game.console("hang")
    await asyncio.sleep(0.2)
    started = time.monotonic()
    results = await asyncio.gather(*(p.probe() for p in plugins))
    assert time.monotonic() - started < 1.5
    # A hung game still accepts connections: the TCP probe cannot tell.
    assert [r.ok for r in results] == [False, False, False, False, False, True]
    assert all("0.5s" in (r.detail or "") for r in results[:5]), results
    game.console("unhang")
    await asyncio.sleep(0.2)
    assert all(r.ok for r in await asyncio.gather(*(p.probe() for p in plugins)))
    for one in plugins:
        await one.close()


async def test_every_probe_of_a_game_that_is_down_fails_fast() -> None:
    port = free_port()
    urls = [
        f"rcon://:secret@127.0.0.1:{port}",
        f"a2s://127.0.0.1:{port}",
        f"minecraft://127.0.0.1:{port}",
        f"palworld://admin:secret@127.0.0.1:{port}",
        f"http://127.0.0.1:{port}/",
        f"tcp://127.0.0.1:{port}",
    ]
    started = time.monotonic()
    results = []
    for url in urls:
        async with plugin(url, timeout_s=1.0) as one:
            results.append(await one.probe())
    assert not any(r.ok for r in results)
    assert all("secret" not in (r.detail or "") for r in results)
    assert time.monotonic() - started < 6


def test_plugins_import_their_libraries_only_when_used() -> None:
    code = (
        "import sys, wcms.agent.plugins as p; from wcms.protocol.programs import parse_probe_url;"
        "print('mcstatus' in sys.modules, 'a2s' in sys.modules);"
        "p.plugin_for(parse_probe_url('minecraft://h:1'), timeout_s=1);"
        "print('mcstatus' in sys.modules, 'a2s' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "False"]

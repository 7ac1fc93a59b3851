"""Hostile input to every agent message and every admin body, against one real server.

Each case is a valid body with one thing made hostile (a number past 64 bits, a lone
surrogate, NUL, NaN, a huge string, deep nesting, a wrong type, a missing or unknown
field, every field null), a body that is not JSON at all, or arbitrary JSON. After each:

- the answer is below 500 and holds no traceback;
- a 4xx answer is the error envelope, and a 422 for a mutated field names a field;
- every ``CHECK_EVERY`` cases (and after each endpoint), the server still serves:
  ``/readyz`` is 200 and a sentinel agent's heartbeat sent then is stored.

The agent WebSocket gets hostile frames too: every protocol violation must end in a
close frame with a code and a reason, never a dropped TCP connection.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.sync.client import ClientConnection, connect

from tests.procs import ServerProc, wait_for
from wcms.protocol import CloseCode, HelloFrame, ShutdownFrame, agent_frame, server_frame

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("WCMS_FUZZ_EXAMPLES", "40"))
CHECK_EVERY = 50
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # No shrinking: a failure's message already holds the whole request and answer.
    phases=[Phase.explicit, Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

FUZZ_AGENT = "fuzz-1"
WS_AGENT = "fuzz-ws"
SENTINEL = "sentinel-1"
TARGET = "fuzz-target"
ENROLLED = "fuzz-enrol"
ROOM = "fuzz-room"
TIMEOUT_S = 30.0

# --- hostile values ---------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE: list[Any] = [
    2**64,
    2**63,
    -(2**63) - 1,
    10**40,
    -1,
    0,
    1.5,
    1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    "\ud800",
    "a\udfffb",
    "\x00",
    "a\x00b",
    "",
    " ",
    "x" * 100_000,
    "é ✓ 한글 🙂",
    "1-1",
    "../../etc/passwd",
    True,
    False,
    None,
    [],
    {},
    [None],
    {"": None},
    {"\ud800": 1},
    nested(40),
    nested(400),
]
# Literals no Python value serialises to: spliced into the JSON text as they are.
RAW_VALUES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "18446744073709551616",
    "9" * 5000,
    "[" * 3000 + "]" * 3000,
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\u0000"',
    '{"a": 1, "a": 2}',
]
RAW_BODIES = [
    b"",
    b"{",
    b"}",
    b'{"a": }',
    b"null",
    b"[]",
    b'"text"',
    b"0",
    b"true",
    b"{}",
    b"\xff\xfe\xfa",
    b'{"\xff": 1}',
    b"\x00" * 16,
    b'{"x": NaN}',
    b'{"x": 1e999}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"\\ud800": 1}',
    b"9" * 5000,
    b"x" * (1024 * 1024 + 1),
]
ARBITRARY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_VALUE = st.one_of(
    st.sampled_from(HOSTILE), ARBITRARY_JSON, st.integers(), st.text(max_size=50)
)
# Stands for a value each case needs of its own (a run id, a room name): see Case.replace.
PLACEHOLDER = 987_654_321
_RAW = "\x01raw\x01"  # placeholder for a spliced literal; never in a generated value


@dataclass(frozen=True)
class Case:
    """One hostile body, and the field made hostile (None when the whole body is)."""

    body: bytes
    field: tuple[str, ...] | None
    how: str
    content_type: str | None = "application/json"

    def __str__(self) -> str:
        return f"{self.how} {self.field or ''} body={short(self.body)} ({len(self.body)} bytes)"

    __repr__ = __str__

    def replace(self, placeholder: int, value: int) -> Case:
        """This case with the first ``placeholder`` in its body (if still there) made
        ``value``: a value each case needs of its own."""
        body = self.body.replace(str(placeholder).encode(), str(value).encode(), 1)
        return Case(body, self.field, self.how, self.content_type)


def short(data: str | bytes, limit: int = 300) -> str:
    """``data`` as a repr, cut to ``limit`` characters: failure messages stay readable."""
    shown = repr(data)
    return shown if len(shown) <= limit else f"{shown[:limit]}...<{len(data)} in all>"


def dumps(value: Any) -> bytes:
    # ensure_ascii: lone surrogates and NUL go out as \\uXXXX escapes, as a hostile
    # client would send them (they cannot be encoded as UTF-8 bytes).
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode("ascii")


def paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every place in ``value`` a field or an item sits."""
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        path = (*prefix, str(key))
        yield path
        yield from paths(item, path)


def at(value: Any, path: tuple[str, ...]) -> Any:
    """What sits at ``path`` in ``value``."""
    for part in path:
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def with_value(value: Any, path: tuple[str, ...], new: Any) -> Any:
    """A copy of ``value`` with what is at ``path`` replaced by ``new``."""
    changed = copy.deepcopy(value)
    parent = at(changed, path[:-1])
    parent[int(path[-1]) if isinstance(parent, list) else path[-1]] = new
    return changed


def without(value: Any, path: tuple[str, ...]) -> Any:
    """A copy of ``value`` without what is at ``path``."""
    changed = copy.deepcopy(value)
    parent = at(changed, path[:-1])
    del parent[int(path[-1]) if isinstance(parent, list) else path[-1]]
    return changed


@st.composite
def hostile(draw: st.DrawFn, base: dict[str, Any]) -> Case:
    """``base`` (a valid body) with one hostile change, or a hostile body instead."""
    places = list(paths(base))
    how = draw(
        st.sampled_from(
            ["value"] * 4 + ["raw value", "delete", "unknown", "nulls", "empty", "json", "raw"]
        )
    )
    if how == "value":
        path = draw(st.sampled_from(places))
        return Case(dumps(with_value(base, path, draw(HOSTILE_VALUE))), path, how)
    if how == "raw value":
        path = draw(st.sampled_from(places))
        literal = draw(st.sampled_from(RAW_VALUES))
        body = dumps(with_value(base, path, _RAW)).replace(dumps(_RAW), literal.encode())
        return Case(body, path, how)
    if how == "delete":
        path = draw(st.sampled_from(places))
        return Case(dumps(without(base, path)), path, how)
    if how == "unknown":
        where = draw(st.sampled_from([(), *[p for p in places if isinstance(at(base, p), dict)]]))
        key = draw(st.sampled_from(["unknown", "\ud800", "", "__proto__", "x" * 300]))
        target = copy.deepcopy(base)
        at(target, where)[key] = draw(HOSTILE_VALUE)
        return Case(dumps(target), None, how)
    if how == "nulls":
        return Case(dumps(dict.fromkeys(base)), None, how)
    if how == "empty":
        return Case(b"{}", None, how)
    if how == "json":
        return Case(dumps(draw(ARBITRARY_JSON)), None, how)
    content_type = draw(st.sampled_from(["application/json", "text/plain", None]))
    return Case(draw(st.sampled_from(RAW_BODIES)), None, how, content_type)


# Every field of every body gets each of these, besides the random cases.
SWEEP: list[Any] = [2**64, -(2**63) - 1, "\ud800", "a\x00b", None, []]


def sweep(base: dict[str, Any]) -> Iterator[Case]:
    """The hostile bodies sent for sure: each SWEEP value and NaN in every field, the
    empty and the all-null body, and every raw body."""
    for path in paths(base):
        for value in SWEEP:
            yield Case(dumps(with_value(base, path, value)), path, "sweep")
        body = dumps(with_value(base, path, _RAW)).replace(dumps(_RAW), b"NaN")
        yield Case(body, path, "sweep")
    yield Case(b"{}", None, "empty")
    yield Case(dumps(dict.fromkeys(base)), None, "nulls")
    for raw in RAW_BODIES:
        yield Case(raw, None, "raw")


# --- the answers ------------------------------------------------------------------


def send(client: httpx.Client, method: str, url: str, case: Case) -> httpx.Response:
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    return client.request(method, url, content=case.body, headers=headers)


def check_answer(response: httpx.Response, request: str) -> dict[str, Any] | None:
    """The answer's error (None for a success), after checking its form."""
    where = f"{request}\n  -> {response.status_code} {response.text[:500]}"
    assert response.status_code < 500, where
    assert "Traceback" not in response.text, where
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"the error answer is not JSON: {where}") from None
    assert isinstance(body, dict) and set(body) == {"error"}, where
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], where
    assert isinstance(error.get("message"), str) and error["message"], where
    return error  # type: ignore[no-any-return]


def check_case(response: httpx.Response, method: str, url: str, case: Case) -> None:
    request = f"{method} {url} {case}"
    error = check_answer(response, request)
    if error is not None and response.status_code == 422 and case.field is not None:
        where = f"{request}\n  -> 422 {response.text[:500]}"
        assert error.get("field"), f"no field named: {where}"


class Probe:
    """Checks, every so often, that the server still serves and stores."""

    def __init__(self, server: ServerProc, admin: httpx.Client, sentinel: httpx.Client):
        self.server = server
        self.admin = admin
        self.sentinel = sentinel
        self.cases = 0
        self._marks = itertools.count(1)

    def after_case(self) -> None:
        self.cases += 1
        if self.cases % CHECK_EVERY == 0:
            self.check()

    def check(self) -> None:
        ready = httpx.get(self.server.url + "/readyz", timeout=TIMEOUT_S)
        assert ready.status_code == 200, f"/readyz after {self.cases} cases: {ready.text}"
        # A value no other heartbeat carries: seeing it stored proves the writer works.
        mark = round(next(self._marks) % 90 + random.random(), 6)
        status = {**STATUS, "cpu_percent": mark}
        answer = self.sentinel.post("/api/client/heartbeat", json={"status": status})
        assert answer.status_code == 200, answer.text

        def stored() -> bool:
            machine = self.admin.get(f"/api/machines/{SENTINEL}").json()
            return (machine.get("last_status") or {}).get("cpu_percent") == mark

        wait_for(stored, timeout=15, what=f"the sentinel's heartbeat {mark} stored")


# --- bodies -----------------------------------------------------------------------

STATUS: dict[str, Any] = {
    "cpu_percent": 12.5,
    "ram_used": 2_000_000_000,
    "ram_total": 8_000_000_000,
    "ram_percent": 25.0,
    "disks": [{"mount": "/", "total": 256_000_000_000, "used": 64_000_000_000, "percent": 25.0}],
    "users": ["student"],
    "uptime_s": 3600.0,
    "process_count": 120,
}


def inventory(hostname: str) -> dict[str, Any]:
    return {
        "hostname": hostname,
        "os_name": "Linux",
        "os_version": "6.1",
        "os_pretty": "Debian GNU/Linux 12",
        "arch": "x86_64",
        "cpu_model": "Fuzz CPU",
        "cpu_cores": 4,
        "cpu_threads": 8,
        "ram_total": 8_000_000_000,
        "disks": [{"mount": "/", "fstype": "ext4", "total": 256_000_000_000}],
        "macs": ["02:00:00:00:00:0f"],
        "ips": ["10.0.0.15"],
        "agent_version": "fuzz",
        "boot_time": "2026-01-01T00:00:00Z",
    }


def command(**fields: Any) -> dict[str, Any]:
    return {
        "selector": TARGET,
        "type": "execute",
        "payload": {"command": "echo fuzz", "cwd": None, "env": {"LANG": "C"}},
        "priority": 0,
        "timeout_s": 60,
        "max_retries": 0,
        "idempotent": False,
        "expires_in_s": 3600,
        **fields,
    }


# --- the world the cases run in ---------------------------------------------------


@pytest.fixture(scope="module")
def server(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProc]:
    # A short long-poll, so that a valid poll among the cases costs little time.
    proc = ServerProc(tmp_path_factory.mktemp("fuzz"), module_database_url, poll_timeout=0.2)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@dataclass
class World:
    server: ServerProc
    token: str
    admin: httpx.Client
    agent: httpx.Client
    credentials: dict[str, str]
    update_run: int
    progress_run: int
    probe: Probe

    def fresh_running_run(self) -> int:
        """A new run of the fuzz agent's, delivered and reported running."""
        created = self.admin.post("/api/commands", json=command(selector=FUZZ_AGENT))
        assert created.status_code == 201, created.text
        run_id = int(created.json()["runs"][0]["id"])
        assert self.agent.get("/api/client/command", params={"wait": 0}).status_code == 200
        running = {"run_id": run_id, "attempt": 1, "state": "running"}
        answer = self.agent.post("/api/client/command/result", json=running)
        assert answer.status_code == 200, answer.text
        return run_id


def agent_client(server: ServerProc, credential: str, session: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {credential}", "X-WCMS-Session": session}
    return httpx.Client(base_url=server.url, headers=headers, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def world(server: ServerProc) -> Iterator[World]:
    token = server.token(uses=10_000, ttl="2h")
    credentials = {}
    for machine_id in (FUZZ_AGENT, WS_AGENT, SENTINEL, TARGET):
        body = {"enrollment_token": token, "machine_id": machine_id}
        answer = httpx.post(
            server.url + "/api/client/register",
            json={**body, "inventory": inventory(machine_id)},
            timeout=TIMEOUT_S,
        )
        assert answer.status_code == 200, answer.text
        credentials[machine_id] = answer.json()["credential"]
    admin = server.api().client
    assert admin.post("/api/rooms", json={"name": ROOM, "rows": 6, "cols": 6}).status_code == 201
    agent = agent_client(server, credentials[FUZZ_AGENT], "fuzz-http")
    sentinel = agent_client(server, credentials[SENTINEL], "sentinel")
    probe = Probe(server, admin, sentinel)
    world = World(server, token, admin, agent, credentials, 0, 0, probe)
    world.update_run = world.fresh_running_run()
    world.progress_run = world.fresh_running_run()
    try:
        yield world
    finally:
        for client in (admin, agent, sentinel):
            client.close()


def fuzz_body(
    world: World,
    client: httpx.Client,
    method: str,
    url: str,
    base: dict[str, Any],
    *,
    prepare: Callable[[Case], Case] | None = None,
    after: Callable[[httpx.Response], None] | None = None,
) -> None:
    """Send the sweep of ``base`` and ``EXAMPLES`` random hostile variants of it, and
    check every answer. ``prepare`` makes a case ready to send (a name of its own...)."""

    def one(case: Case) -> None:
        if prepare is not None:
            case = prepare(case)
        response = send(client, method, url, case)
        check_case(response, method, url, case)
        if after is not None:
            after(response)
        world.probe.after_case()

    for case in sweep(base):
        one(case)
    given(case=hostile(base))(FUZZ(one))()
    world.probe.check()


# --- the agent's HTTP API ---------------------------------------------------------


def test_heartbeats(world):
    fuzz_body(world, world.agent, "POST", "/api/client/heartbeat", {"status": STATUS})


def test_registers_with_the_credential(world):
    body = {"protocol_version": 2, "machine_id": FUZZ_AGENT, "inventory": inventory(FUZZ_AGENT)}
    fuzz_body(world, world.agent, "POST", "/api/client/register", body)


def test_enrolments_with_a_token(world):
    body = {
        "protocol_version": 2,
        "enrollment_token": world.token,
        "machine_id": ENROLLED,
        "inventory": inventory(ENROLLED),
    }
    with httpx.Client(base_url=world.server.url, timeout=TIMEOUT_S) as anonymous:
        fuzz_body(world, anonymous, "POST", "/api/client/register", body)


def test_running_reports(world):
    body = {"run_id": world.update_run, "attempt": 1, "state": "running"}
    fuzz_body(world, world.agent, "POST", "/api/client/command/result", body)


def test_results_of_running_runs(world):
    """Each case reports the end of a run of its own, so that what is valid is stored."""
    result = {
        "exit_code": 0,
        "stdout": "out",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "duration_ms": 5,
        "error": None,
        "data": {"files": [1, 2]},
        "interrupted": False,
    }
    body = {"run_id": PLACEHOLDER, "attempt": 1, "state": "succeeded", "result": result}

    def prepare(case: Case) -> Case:
        return case.replace(PLACEHOLDER, world.fresh_running_run())

    fuzz_body(world, world.agent, "POST", "/api/client/command/result", body, prepare=prepare)


def test_progress_reports(world):
    body = {
        "run_id": world.progress_run,
        "attempt": 1,
        "stdout": "50%\n",
        "stderr": "",
        "stdout_offset": 0,
        "stderr_offset": 0,
        "percent": 50.0,
        "note": "copying",
    }
    fuzz_body(world, world.agent, "POST", "/api/client/command/progress", body)


def test_shutdown_notices(world):
    fuzz_body(world, world.agent, "POST", "/api/client/shutdown", {"reason": "shutdown"})


WAITS = ["", "nan", "inf", "-inf", "1e309", "-1", "301", "0", "0.01", "abc", "9" * 5000, "\x00"]


def test_command_polls(world):
    @FUZZ
    @given(wait=st.sampled_from(WAITS) | st.text(max_size=30))
    def run(wait: str) -> None:
        response = world.agent.get("/api/client/command", params={"wait": wait})
        check_answer(response, f"GET /api/client/command?wait={wait!r}")
        world.probe.after_case()

    run()
    world.probe.check()


# --- the admin API ----------------------------------------------------------------

_names = itertools.count(1_000_000_000)


def test_commands(world):
    fuzz_body(world, world.admin, "POST", "/api/commands", command())


def test_bulk_commands(world):
    body = {k: v for k, v in command(targets=[TARGET]).items() if k != "selector"}
    fuzz_body(world, world.admin, "POST", "/api/commands/bulk", body)


def test_machine_patches(world):
    body = {"room": ROOM, "seat": "1-1", "tags": ["fuzz", "kiosk"]}
    fuzz_body(world, world.admin, "PATCH", f"/api/machines/{TARGET}", body)


def test_room_creations(world):
    def prepare(case: Case) -> Case:
        # A name of its own, so that a valid case creates a room rather than conflicts.
        return case.replace(PLACEHOLDER, next(_names))

    base = {"name": f"fuzz-{PLACEHOLDER}", "rows": 4, "cols": 6}
    fuzz_body(world, world.admin, "POST", "/api/rooms", base, prepare=prepare)


def test_room_patches(world):
    def after(response: httpx.Response) -> None:
        # A valid rename moves the room: put it back for the next case.
        if response.status_code == 200 and response.json().get("name") != ROOM:
            renamed = response.json()["name"]
            back = world.admin.patch(f"/api/rooms/{renamed}", json={"name": ROOM})
            assert back.status_code == 200, back.text

    body = {"name": ROOM, "rows": 6, "cols": 6}
    fuzz_body(world, world.admin, "PATCH", f"/api/rooms/{ROOM}", body, after=after)


def test_room_layouts(world):
    body = {"seats": {TARGET: "2-3"}}
    fuzz_body(world, world.admin, "PUT", f"/api/rooms/{ROOM}/layout", body)


def test_users(world):
    body = {"username": "fuzz-user", "password": "fuzz-password-1"}
    fuzz_body(world, world.admin, "POST", "/api/users", body)


def test_logins(world):
    body = {"username": "fuzz-user", "password": "wrong-password"}
    with httpx.Client(base_url=world.server.url, timeout=TIMEOUT_S) as browser:
        fuzz_body(world, browser, "POST", "/api/auth/login", body)


def test_enrolment_tokens(world):
    body = {"uses": 5, "ttl_s": 3600, "note": "fuzz", "room": ROOM}
    fuzz_body(world, world.admin, "POST", "/api/enroll-tokens", body)


def test_api_keys(world):
    fuzz_body(world, world.admin, "POST", "/api/api-keys", {"name": "fuzz-key"})


def test_action_policies(world):
    body = {"disabled": ["install", "delete_user"]}
    fuzz_body(world, world.admin, "PUT", f"/api/action-policies/machine:{TARGET}", body)


# --- the agent WebSocket ----------------------------------------------------------

# What a clean close may carry after a protocol violation, or after the agent's goodbye.
VIOLATION = CloseCode.PROTOCOL_ERROR
GOODBYE = CloseCode.NORMAL

HELLO = {"kind": "hello", "protocol_version": 2, "session_id": "fuzz-ws"}
FRAMES: list[dict[str, Any]] = [
    {"kind": "heartbeat", "status": STATUS},
    {"kind": "run_update", "update": {"run_id": 10**12, "attempt": 1, "state": "running"}},
    {
        "kind": "run_update",
        "update": {
            "run_id": 10**12 + 1,
            "attempt": 1,
            "state": "failed",
            "result": {"exit_code": 1, "stderr": "no", "duration_ms": 3},
        },
    },
    {"kind": "run_progress", "progress": {"run_id": 10**12, "stdout": "x", "percent": 1}},
    {"kind": "shutdown", "reason": "shutdown"},
    {**HELLO, "inventory": inventory(WS_AGENT)},
]
# The server's limit on one WebSocket message (WCMS_MAX_REQUEST_BYTES, 1 MiB by default):
# past it, uvicorn closes with 1009.
MAX_FRAME_BYTES = 1024 * 1024
TOO_BIG = 1009


@dataclass(frozen=True)
class Frame:
    """One frame to send: text (JSON, or not) or binary."""

    data: str | bytes

    @property
    def binary(self) -> bool:
        return isinstance(self.data, bytes)

    @property
    def too_big(self) -> bool:
        size = len(self.data) if self.binary else len(str(self.data).encode("utf-8"))
        return size > MAX_FRAME_BYTES

    def parsed(self) -> object | None:
        """The agent frame this is, or None if it is none (binary frames never are)."""
        if isinstance(self.data, bytes):
            return None
        try:
            return agent_frame(self.data)
        except ValidationError:
            return None

    def __repr__(self) -> str:
        return short(self.data, 200)


@st.composite
def hostile_frame(draw: st.DrawFn) -> Frame:
    """A frame an agent might send: a valid one made hostile, text that is no frame,
    or a binary frame (the protocol is JSON text frames only)."""
    how = draw(st.sampled_from(["frame"] * 4 + ["text", "binary"]))
    if how == "frame":
        case = draw(hostile(draw(st.sampled_from(FRAMES))))
        return Frame(case.body.decode("utf-8", errors="replace"))
    if how == "text":
        texts = st.sampled_from(["", "{", "null", "[]", '{"kind": "nope"}']) | st.text()
        return Frame(draw(texts))
    binaries = st.sampled_from([b"", b"\x00\xff", dumps(FRAMES[0])]) | st.binary(max_size=64)
    return Frame(draw(binaries))


@dataclass
class Ending:
    """How the server ended a connection, and what it sent before."""

    close: Close | None  # None: the TCP connection dropped without a close frame
    frames: list[dict[str, Any]]


def ws_connect(world: World) -> ClientConnection:
    url = world.server.url.replace("http://", "ws://") + "/api/client/ws"
    headers = {
        "Authorization": f"Bearer {world.credentials[WS_AGENT]}",
        "X-WCMS-Session": "fuzz-ws",
    }
    return connect(url, additional_headers=headers, open_timeout=TIMEOUT_S, close_timeout=5)


def until_closed(ws: ClientConnection) -> Ending:
    """Read every frame until the server closes (bounded by TIMEOUT_S per frame)."""
    frames: list[dict[str, Any]] = []
    while True:
        try:
            raw = ws.recv(timeout=TIMEOUT_S)
        except ConnectionClosed as exc:
            return Ending(exc.rcvd, frames)
        except TimeoutError:
            raise AssertionError(f"the server neither answered nor closed: {frames}") from None
        assert isinstance(raw, str), f"the server sent a binary frame: {short(raw)}"
        server_frame(raw)  # every frame the server sends is one of the protocol's
        frames.append(json.loads(raw))


def text_frame(value: Any) -> str:
    return dumps(value).decode("ascii")


def test_first_frames_other_than_hello_are_closed_as_protocol_errors(world):
    @FUZZ
    @given(first=hostile_frame())
    def run(first: Frame) -> None:
        with ws_connect(world) as ws:
            ws.send(first.data)
            expected: int
            if isinstance(first.parsed(), HelloFrame):
                welcome = json.loads(ws.recv(timeout=TIMEOUT_S))
                assert welcome["kind"] == "welcome", welcome
                ws.send(text_frame(FRAMES[4]))
                expected = GOODBYE
            else:
                expected = TOO_BIG if first.too_big else VIOLATION
            ending = until_closed(ws)
        where = f"first frame {first!r}: {ending}"
        assert ending.close is not None, f"dropped without a close frame: {where}"
        assert ending.close.code == expected, where
        assert ending.close.reason, where
        world.probe.after_case()

    run()
    world.probe.check()


def test_hostile_frames_after_the_hello_get_errors_or_a_clean_close(world):
    @FUZZ
    @given(frames=st.lists(hostile_frame(), min_size=1, max_size=5))
    def run(frames: list[Frame]) -> None:
        # The server reads no further than a frame that ends the conversation.
        sent = list(itertools.takewhile(lambda frame: not ends_conversation(frame), frames))
        sent += frames[len(sent) : len(sent) + 1]
        last = sent[-1]
        with ws_connect(world) as ws:
            ws.send(text_frame(HELLO))
            assert json.loads(ws.recv(timeout=TIMEOUT_S))["kind"] == "welcome"
            try:
                for frame in sent:
                    ws.send(frame.data)
                if not ends_conversation(last):
                    ws.send(text_frame(FRAMES[4]))
            except ConnectionClosed:
                pass
            ending = until_closed(ws)
        where = f"frames {sent!r}: {ending}"
        assert ending.close is not None, f"dropped without a close frame: {where}"
        if last.too_big:
            assert ending.close.code == TOO_BIG, where
        elif last.binary:
            assert ending.close.code == VIOLATION, where
        else:
            assert ending.close.code == GOODBYE, where
        assert ending.close.reason, where
        # Every text frame that is no agent frame got its own error, and nothing else.
        bad = sum(1 for frame in sent if not frame.binary and frame.parsed() is None)
        errors = [f for f in ending.frames if f["kind"] == "error" and f["code"] == "bad_frame"]
        if not last.too_big:
            assert len(errors) == bad, where
        world.probe.after_case()

    run()
    world.probe.check()


def ends_conversation(frame: Frame) -> bool:
    """Whether the server ends the connection on this frame: a binary one or one too big
    (protocol violations), or a goodbye."""
    return frame.binary or frame.too_big or isinstance(frame.parsed(), ShutdownFrame)

"""A receiver for alert messages, for every alert test: an HTTP server that plays Discord,
Slack and a generic webhook, and an SMTP server, each recording what it gets.

In process::

    receiver = HttpReceiver().start()          # 127.0.0.1, a free port
    url = receiver.url + "/hook/ops"           # /discord/..., /slack/..., anything else
    receiver.set_mode("/hook/", "500", times=2)  # the next 2 requests to /hook/... get 500
    receiver.wait_for(3, prefix="/hook/")      # -> [Received, ...]
    receiver.stop(); receiver.start()          # down (connections refused), up: same port
    mail = SmtpReceiver().start()              # smtp://127.0.0.1:{mail.port}?to=a@b
    mail.wait_for(1)[0].message["Subject"]

Modes, set per path prefix (the longest matching one wins), for the next ``times``
requests or, with ``times=None``, until changed: ``ok``; ``429`` (``retry_after``
seconds, Discord's JSON body and ``Retry-After``); ``ratelimit`` (Discord: accepted,
with ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset-After: reset_after``);
``slow`` (answers ok after ``delay`` seconds); or any HTTP status as digits (``500``,
``404``, ``410``...), answered the way the service played answers it. SMTP modes:
``ok``, or a reply code (``550``, ``451``) for the message's data.

In another process (for a test that restarts the server)::

    proc = ReceiverProc(tmp_path / "received.jsonl").start()
    proc.remote.set_mode("/hook/", "500", times=1)
    proc.remote.received("/hook/"); proc.remote.mails()
    proc.remote.down_for(2.0)                  # stops listening, comes back on its port

which runs ``python -m tests.alert_receiver --port P --smtp-port Q --log FILE``: every
request and mail is also appended to FILE as a JSON line (:func:`read_log`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email
import email.message
import email.policy
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.procs import ROOT, free_port, wait_for


@dataclass(frozen=True)
class Received:
    """One HTTP request as it arrived; ``headers`` by lower-case name."""

    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival
    status: int  # what it was answered

    def json(self) -> Any:
        return json.loads(self.body)

    def as_line(self) -> dict[str, Any]:
        return {
            "kind": "http",
            "path": self.path,
            "method": self.method,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "body_b64": base64.b64encode(self.body).decode(),
            "at": self.at,
            "status": self.status,
        }

    @classmethod
    def from_line(cls, line: dict[str, Any]) -> Received:
        body = base64.b64decode(line["body_b64"])
        return cls(line["path"], line["method"], line["headers"], body, line["at"], line["status"])


@dataclass(frozen=True)
class Mail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float
    login: str | None = None  # the user it logged in as

    @property
    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed

    def as_line(self) -> dict[str, Any]:
        return {
            "kind": "mail",
            "mail_from": self.mail_from,
            "rcpt_tos": self.rcpt_tos,
            "data_b64": base64.b64encode(self.data).decode(),
            "at": self.at,
            "login": self.login,
        }

    @classmethod
    def from_line(cls, line: dict[str, Any]) -> Mail:
        data = base64.b64decode(line["data_b64"])
        return cls(line["mail_from"], line["rcpt_tos"], data, line["at"], line.get("login"))


@dataclass
class Mode:
    mode: str = "ok"
    times: int | None = None
    retry_after: float = 1.0
    reset_after: float = 1.0
    delay: float = 0.0


class _Script:
    """Modes by path prefix, used up request by request; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modes: dict[str, Mode] = {}

    def set(self, prefix: str, mode: Mode) -> None:
        with self._lock:
            self._modes[prefix] = mode

    def clear(self) -> None:
        with self._lock:
            self._modes.clear()

    def next(self, path: str) -> Mode:
        with self._lock:
            prefixes = [p for p in self._modes if path.startswith(p)]
            if not prefixes:
                return Mode()
            prefix = max(prefixes, key=len)
            mode = self._modes[prefix]
            if mode.times is not None:
                mode.times -= 1
                if mode.times <= 0:
                    del self._modes[prefix]
            return Mode(mode.mode, None, mode.retry_after, mode.reset_after, mode.delay)


class _Log:
    """What arrived, in memory and as JSON lines in a file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.requests: list[Received] = []
        self.mails: list[Mail] = []

    def add(self, item: Received | Mail) -> None:
        with self.lock:
            if isinstance(item, Received):
                self.requests.append(item)
            else:
                self.mails.append(item)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(item.as_line()) + "\n")

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.mails.clear()


def read_log(path: Path) -> tuple[list[Received], list[Mail]]:
    """The requests and mails a receiver process wrote to its log file."""
    requests: list[Received] = []
    mails: list[Mail] = []
    if not path.exists():
        return requests, mails
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.strip():
            line = json.loads(text)
            if line["kind"] == "http":
                requests.append(Received.from_line(line))
            else:
                mails.append(Mail.from_line(line))
    return requests, mails


# --- HTTP ------------------------------------------------------------------------------


def _flavour(path: str) -> str:
    for name in ("discord", "slack"):
        if path.startswith(f"/{name}"):
            return name
    return "hook"


_SLACK_ERRORS = {403: "invalid_token", 404: "no_service", 410: "channel_is_archived"}


def _answer(path: str, mode: Mode) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for one request to ``path`` in ``mode``."""
    flavour = _flavour(path)
    if mode.mode in ("ok", "slow", "ratelimit"):
        if flavour == "discord":
            remaining = "0" if mode.mode == "ratelimit" else "4"
            headers = {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": remaining,
                "X-RateLimit-Reset-After": f"{mode.reset_after:g}",
            }
            return 204, headers, b""
        if flavour == "slack":
            return 200, {"Content-Type": "text/plain"}, b"ok"
        return 200, {"Content-Type": "application/json"}, b'{"ok":true}'
    if mode.mode == "429":
        wait = f"{mode.retry_after:g}"
        if flavour == "discord":
            body = {
                "message": "You are being rate limited.",
                "retry_after": mode.retry_after,
                "global": False,
            }
            headers = {
                "Content-Type": "application/json",
                "Retry-After": wait,
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": wait,
            }
            return 429, headers, json.dumps(body).encode()
        return 429, {"Retry-After": wait, "Content-Type": "text/plain"}, b"rate_limited"
    status = int(mode.mode)
    if flavour == "discord":
        body = (
            {"message": "Unknown Webhook", "code": 10015} if status == 404 else {"message": "error"}
        )
        return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
    if flavour == "slack":
        return status, {"Content-Type": "text/plain"}, _SLACK_ERRORS.get(status, "error").encode()
    return status, {"Content-Type": "application/json"}, json.dumps({"error": status}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: HttpReceiver


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a receiver that stops is gone at once.
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        receiver = self.server.receiver
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        if url.path.startswith("/_"):
            self._control(receiver, url.path, parse_qs(url.query), body)
            return
        mode = receiver.script.next(url.path)
        status, headers, content = _answer(url.path, mode)
        headers_in = {name.lower(): value for name, value in self.headers.items()}
        # Recorded on arrival: a slow answer is seen as in flight.
        receiver.log.add(Received(url.path, self.command, headers_in, body, arrived, status))
        if mode.delay:
            time.sleep(mode.delay)
        self._send(status, headers, content)

    def _send(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if content:
            # The client may have given up waiting (a timeout test).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(content)

    def _control(
        self, receiver: HttpReceiver, path: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        said: Any = json.loads(body) if body else {}
        answer: Any = {"ok": True}
        if path == "/_received":
            prefix = query.get("prefix", [""])[0]
            answer = [r.as_line() for r in receiver.received(prefix)]
        elif path == "/_mail":
            answer = [m.as_line() for m in receiver.mail.mails()] if receiver.mail else []
        elif path == "/_mode":
            prefix = said.pop("prefix")
            if said.get("smtp"):
                said.pop("smtp")
                if receiver.mail is not None:
                    receiver.mail.set_mode(said.pop("mode"), **said)
            else:
                receiver.set_mode(prefix, said.pop("mode"), **said)
        elif path == "/_reset":
            receiver.reset()
        elif path == "/_down":
            # Refuse connections before answering, and come back later from a thread.
            seconds = float(said.get("seconds", 1.0))
            receiver.stop_listening(then_start_after=seconds)
        else:
            self._send(404, {}, b"")
            return
        self._send(200, {"Content-Type": "application/json"}, json.dumps(answer).encode())


class HttpReceiver:
    """The HTTP side: plays Discord (``/discord/...``), Slack (``/slack/...``) and a
    generic webhook (any other path); records every request."""

    def __init__(
        self, port: int | None = None, *, log: Path | None = None, mail: SmtpReceiver | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.script = _Script()
        self.log = _Log(log)
        # The SMTP receiver whose mails /_mail shows (out of process).
        self.mail = mail
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> HttpReceiver:
        """Listen (again) on the receiver's port."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server(("127.0.0.1", self.port), _Handler)
            server.receiver = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`start`."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def stop_listening(self, *, then_start_after: float) -> None:
        """Refuse new connections now (requests being answered still are), and listen
        again ``then_start_after`` seconds later; returns at once."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is None:
            return
        server.shutdown()
        server.socket.close()

        def come_back() -> None:
            server.server_close()
            if thread is not None:
                thread.join(timeout=5)
            time.sleep(then_start_after)
            self.start()

        threading.Thread(target=come_back, daemon=True).start()

    def down_for(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, then listen again (blocks meanwhile)."""
        self.stop()
        time.sleep(seconds)
        self.start()

    def set_mode(
        self,
        prefix: str,
        mode: str,
        *,
        times: int | None = None,
        retry_after: float = 1.0,
        reset_after: float = 1.0,
        delay: float = 0.0,
    ) -> None:
        """Answer requests to paths starting with ``prefix`` in ``mode`` (module doc)."""
        if mode not in ("ok", "429", "ratelimit", "slow") and not mode.isdigit():
            raise ValueError(f"unknown mode {mode!r}")
        self.script.set(prefix, Mode(mode, times, retry_after, reset_after, delay))

    def reset(self) -> None:
        """Forget every mode and everything received."""
        self.script.clear()
        self.log.clear()
        if self.mail is not None:
            self.mail.reset()

    def received(self, prefix: str = "") -> list[Received]:
        with self.log.lock:
            return [r for r in self.log.requests if r.path.startswith(prefix)]

    def wait_for(self, count: int, *, prefix: str = "", timeout: float = 15.0) -> list[Received]:
        """At least ``count`` requests to ``prefix``, waiting up to ``timeout`` s."""
        found: list[Received] = wait_for(
            lambda: (got := self.received(prefix)) and len(got) >= count and got,
            timeout=timeout,
            what=f"{count} requests to {prefix or '/'}",
        )
        return found

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# --- SMTP ------------------------------------------------------------------------------


class _MailHandler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.receiver.next_reply()
        if reply is not None:
            return reply
        data = envelope.original_content or envelope.content
        login = session.auth_data.login.decode() if session.authenticated else None
        recipients = [str(r) for r in envelope.rcpt_tos]
        mail = Mail(str(envelope.mail_from), recipients, bytes(data), time.time(), login)
        self.receiver.log.add(mail)
        return "250 OK"


class SmtpReceiver:
    """An SMTP server without TLS (aiosmtpd) that keeps every message it accepts; with
    ``username`` it also offers AUTH (over plain text)."""

    def __init__(
        self,
        port: int | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        log: _Log | None = None,
    ) -> None:
        self.port = port or free_port()
        self.username = username
        self.password = password
        self.log = log or _Log(None)
        self._controller: Controller | None = None
        self._lock = threading.Lock()
        self._mode: tuple[str, int | None] = ("ok", None)

    def start(self) -> SmtpReceiver:
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            # AUTH over plain text, as a relay on a LAN may offer it; a mail without a
            # login is still taken (Mail.login tells), a wrong login is refused with 535.
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        controller = Controller(_MailHandler(self), hostname="127.0.0.1", port=self.port, **kwargs)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        # handled=False: aiosmtpd answers a failure with 535 itself.
        return AuthResult(success=ok, handled=ok, auth_data=auth_data)

    def set_mode(self, mode: str, *, times: int | None = None) -> None:
        """``ok``, or an SMTP reply code to answer the next ``times`` messages with."""
        with self._lock:
            self._mode = (mode, times)

    def next_reply(self) -> str | None:
        with self._lock:
            mode, times = self._mode
            if mode == "ok":
                return None
            if times is not None:
                self._mode = ("ok", None) if times <= 1 else (mode, times - 1)
        text = "try again later" if mode.startswith("4") else "refused"
        return f"{mode} {text}"

    def reset(self) -> None:
        self.set_mode("ok")
        self.log.clear()

    def mails(self) -> list[Mail]:
        with self.log.lock:
            return list(self.log.mails)

    def wait_for(self, count: int, *, timeout: float = 15.0) -> list[Mail]:
        found: list[Mail] = wait_for(
            lambda: (got := self.mails()) and len(got) >= count and got,
            timeout=timeout,
            what=f"{count} mails",
        )
        return found

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# --- out of process --------------------------------------------------------------------


class RemoteReceiver:
    """Drives a receiver process over its control endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        answer = httpx.request(method, self.url + path, json=body, params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def set_mode(self, prefix: str, mode: str, **options: Any) -> None:
        self._call("POST", "/_mode", {"prefix": prefix, "mode": mode, **options})

    def set_mail_mode(self, mode: str, *, times: int | None = None) -> None:
        self._call("POST", "/_mode", {"prefix": "", "smtp": True, "mode": mode, "times": times})

    def received(self, prefix: str = "") -> list[Received]:
        return [Received.from_line(line) for line in self._call("GET", "/_received", prefix=prefix)]

    def mails(self) -> list[Mail]:
        return [Mail.from_line(line) for line in self._call("GET", "/_mail")]

    def stop_listening(self, *, then_start_after: float) -> None:
        """Refuse new connections now (requests being answered still are), and listen
        again ``then_start_after`` seconds later; returns at once."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is None:
            return
        server.shutdown()
        server.socket.close()

        def come_back() -> None:
            server.server_close()
            if thread is not None:
                thread.join(timeout=5)
            time.sleep(then_start_after)
            self.start()

        threading.Thread(target=come_back, daemon=True).start()

    def down_for(self, seconds: float) -> None:
        """The receiver refuses connections from now on for ``seconds`` (this returns at
        once: :meth:`wait_for` rides out the outage)."""
        self._call("POST", "/_down", {"seconds": seconds})

    def reset(self) -> None:
        self._call("POST", "/_reset")

    def wait_for(self, count: int, *, prefix: str = "", timeout: float = 15.0) -> list[Received]:
        found: list[Received] = wait_for(
            lambda: (got := self._received_or_none(prefix)) and len(got) >= count and got,
            timeout=timeout,
            what=f"{count} requests to {prefix or '/'}",
        )
        return found

    def _received_or_none(self, prefix: str) -> list[Received] | None:
        try:
            return self.received(prefix)
        except httpx.HTTPError:  # down for a while, on purpose
            return None


class ReceiverProc:
    """``python -m tests.alert_receiver`` as a child process, on fixed ports so that it
    can be stopped and started again where the server under test expects it."""

    def __init__(self, log: Path, *, port: int | None = None, smtp_port: int | None = None) -> None:
        self.log = log
        self.port = port or free_port()
        self.smtp_port = smtp_port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.remote = RemoteReceiver(self.url)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ReceiverProc:
        command = [sys.executable, "-m", "tests.alert_receiver", "--port", str(self.port)]
        command += ["--smtp-port", str(self.smtp_port), "--log", str(self.log)]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        wait_for(self._answers, timeout=20, what=f"alert receiver on {self.url}")
        return self

    def _answers(self) -> bool:
        try:
            self.remote.received("/_none")
        except httpx.HTTPError:
            return False
        return True

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def received(self) -> list[Received]:
        """Everything it ever got, across restarts (from its log file)."""
        return read_log(self.log)[0]

    def mails(self) -> list[Mail]:
        return read_log(self.log)[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--smtp-port", type=int)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args(argv)
    log = _Log(args.log)
    mail = SmtpReceiver(args.smtp_port, log=log).start() if args.smtp_port else None
    http = HttpReceiver(args.port, mail=mail)
    http.log = log
    http.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(json.dumps({"http": http.port, "smtp": mail.port if mail else None}), flush=True)
    while not stopped.wait(0.5):
        pass
    http.stop()
    if mail is not None:
        mail.stop()


if __name__ == "__main__":
    main()

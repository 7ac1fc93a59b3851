"""The server's agent-facing HTTP API (``/api/client/...``), as typed calls.

Every answer other than success becomes an exception from :mod:`wcms.agent.errors`,
chosen from the error body's ``code``; network failures become TransportError.
"""

from __future__ import annotations

import logging
from typing import NoReturn, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from wcms.agent.errors import (
    AgentError,
    CredentialRevoked,
    DuplicateMachine,
    EnrollmentRefused,
    ServerError,
    TransportError,
    UnknownCredential,
)
from wcms.protocol import (
    CommandPoll,
    ErrorBody,
    ErrorCode,
    FileRef,
    HeartbeatRequest,
    RegisterRequest,
    RegisterResponse,
    RunProgress,
    RunUpdate,
    ShutdownNotice,
    StatusReport,
)
from wcms.protocol.messages import dump
from wcms.protocol.programs import ProgramReport, ProgramReportAck

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

SESSION_HEADER = "X-WCMS-Session"
REQUEST_TIMEOUT_S = 30.0
UPLOAD_TIMEOUT_S = 300.0
# A long-poll may take this much longer than its ``wait`` before it counts as lost.
POLL_SLACK_S = 10.0
_TOKEN_CODES = frozenset(
    {
        ErrorCode.INVALID_TOKEN,
        ErrorCode.TOKEN_EXPIRED,
        ErrorCode.TOKEN_USED_UP,
        ErrorCode.TOKEN_REVOKED,
    }
)


class _ErrorAnswer(BaseModel):
    error: ErrorBody


def error_for_code(code: str, message: str) -> AgentError | None:
    """The exception for a server error code that changes what the agent does, or
    None if the code has no special meaning."""
    if code == ErrorCode.CREDENTIAL_REVOKED:
        return CredentialRevoked(message)
    if code == ErrorCode.UNKNOWN_CREDENTIAL:
        return UnknownCredential(message)
    if code == ErrorCode.DUPLICATE_MACHINE:
        return DuplicateMachine(message)
    if code in _TOKEN_CODES:
        return EnrollmentRefused(message)
    return None


def raise_for_answer(status: int, body: bytes, *, enrolling: bool = False) -> NoReturn:
    """Raise the exception for an error answer from the server."""
    try:
        error = _ErrorAnswer.model_validate_json(body).error
        code, message = error.code, error.message
    except ValidationError:
        code, message = "", body[:200].decode("utf-8", errors="replace").strip()
    message = message or f"HTTP {status}"
    specific = error_for_code(code, message)
    if specific is not None:
        raise specific
    if enrolling and status in (401, 403):
        raise EnrollmentRefused(message)
    named = f"{status} {code}" if code else str(status)
    raise ServerError(f"server answered {named}: {message}", status=status, code=code)


class ServerClient:
    """Calls to one WCMS server on behalf of this agent process."""

    def __init__(self, session: aiohttp.ClientSession, server_url: str, *, session_id: str) -> None:
        self._session = session
        self.base_url = server_url.rstrip("/")
        self.session_id = session_id
        # Set once enrolled; sent as a bearer token on every later call.
        self.credential: str | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session

    @property
    def websocket_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/client/ws"

    def headers(self, *, authenticated: bool = True) -> dict[str, str]:
        headers = {SESSION_HEADER: self.session_id}
        if authenticated:
            if self.credential is None:
                raise UnknownCredential("this agent has no credential yet")
            headers["Authorization"] = f"Bearer {self.credential}"
        return headers

    async def enrol(self, request: RegisterRequest) -> RegisterResponse:
        """Enrol with the token in ``request``; the answer carries the new credential."""
        raw = await self._call("POST", "/api/client/register", body=request, enrolling=True)
        return _parse(raw, RegisterResponse)

    async def hello(self, request: RegisterRequest) -> RegisterResponse:
        """Announce this agent session and refresh the inventory (long-poll transport)."""
        raw = await self._call("POST", "/api/client/register", body=request)
        return _parse(raw, RegisterResponse)

    async def heartbeat(self, status: StatusReport) -> None:
        await self._call("POST", "/api/client/heartbeat", body=HeartbeatRequest(status=status))

    async def poll(self, wait: float, *, programs_revision: int | None = None) -> CommandPoll:
        """Runs to start and to cancel, waiting up to ``wait`` seconds for some; and the
        machine's programs when the server's revision is not ``programs_revision``."""
        params = {"wait": f"{wait:g}"}
        if programs_revision is not None:
            params["programs_revision"] = str(programs_revision)
        raw = await self._call(
            "GET", "/api/client/command", params=params, timeout=wait + POLL_SLACK_S
        )
        return _parse(raw, CommandPoll)

    async def report_programs(self, report: ProgramReport) -> ProgramReportAck:
        """The supervised programs' statuses and state changes (protocol version 3)."""
        raw = await self._call("POST", "/api/client/programs", body=report)
        return _parse(raw, ProgramReportAck)

    async def send_update(self, update: RunUpdate) -> None:
        """Report on a run; returns once the server stored it."""
        await self._call("POST", "/api/client/command/result", body=update)

    async def send_progress(self, progress: RunProgress) -> None:
        """Live output and progress of a running run (protocol version 2)."""
        await self._call("POST", "/api/client/command/progress", body=progress)

    async def upload_file(
        self, data: bytes, *, name: str, content_type: str, run_id: int, attempt: int
    ) -> FileRef:
        """Store a file a run produced (a screenshot) on the server."""
        raw = await self._call(
            "POST",
            "/api/client/files",
            raw=(data, content_type),
            params={"name": name, "run_id": str(run_id), "attempt": str(attempt)},
            timeout=UPLOAD_TIMEOUT_S,
        )
        return _parse(raw, FileRef)

    def file_url(self, file_id: str) -> str:
        """Where this agent fetches a file stored on the server (a document to print)."""
        return f"{self.base_url}/api/client/files/{file_id}"

    async def shutdown(self, reason: str) -> None:
        await self._call("POST", "/api/client/shutdown", body=ShutdownNotice(reason=reason))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        raw: tuple[bytes, str] | None = None,
        params: dict[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
        enrolling: bool = False,
    ) -> bytes:
        """The body of a successful answer; raises for anything else."""
        headers = self.headers(authenticated=not enrolling)
        data = None
        if body is not None:
            data = dump(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            data, headers["Content-Type"] = raw
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                data=data,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransportError(f"{method} {path} failed: {_describe(exc)}") from exc
        if not 200 <= status < 300:
            raise_for_answer(status, answer, enrolling=enrolling)
        return answer


def _parse(raw: bytes, model: type[M]) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ServerError(
            f"the server's answer is not a valid {model.__name__}", status=200
        ) from exc


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__

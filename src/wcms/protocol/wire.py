"""Codes on the wire that agent and server must agree on: WebSocket close codes and the
error codes that change what the agent does.

Both are plain enums (an ``IntEnum`` is an int, a ``StrEnum`` a str), so they go into a
close frame or an error body as they are.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

# Close codes 4000-4999 are the application's: WCMS's are 4000 plus the HTTP status
# that means the same thing (4401 like 401, 4409 like 409).
HTTP_CLOSE_BASE = 4000


class CloseCode(IntEnum):
    """Why the server closed an agent's WebSocket, and so what the agent does next."""

    # The agent said goodbye and the server closed after it: the agent is stopping anyway.
    NORMAL = 1000
    # The server could not store what the agent sent: the agent reconnects and re-sends.
    SERVER_ERROR = 1011
    # The server cannot serve now (its database is down): the agent reconnects with backoff.
    TRY_AGAIN_LATER = 1013
    # The agent broke the protocol (no hello first, bad frames): it reconnects with backoff.
    PROTOCOL_ERROR = 4400
    # Credential revoked (the agent exits, code 3) or unknown (it re-enrols with its token).
    REVOKED = 4401
    # The agent sent nothing for longer than the heartbeat timeout: it reconnects.
    SILENT = 4408
    # Another connection holds this machine id: the agent retries slowly (a clone?).
    DUPLICATE = 4409


class ErrorCode(StrEnum):
    """Error codes (``{"error": {"code": ...}}`` and close reasons) the agent acts on."""

    CREDENTIAL_REVOKED = "credential_revoked"
    UNKNOWN_CREDENTIAL = "unknown_credential"
    DUPLICATE_MACHINE = "duplicate_machine"
    MACHINE_MISMATCH = "machine_mismatch"
    # Codes, not secrets: S105 takes the ``token_*`` names for hardcoded passwords.
    INVALID_TOKEN = "invalid_token"  # noqa: S105
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    TOKEN_USED_UP = "token_used_up"  # noqa: S105
    TOKEN_REVOKED = "token_revoked"  # noqa: S105
    PROTOCOL_ERROR = "protocol_error"


def close_code_for_status(status: int) -> int:
    """The close code that stands for HTTP ``status`` when a handshake is refused and no
    HTTP answer can be sent."""
    return HTTP_CLOSE_BASE + status

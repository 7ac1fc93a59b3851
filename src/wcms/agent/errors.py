"""The agent's error hierarchy.

Library errors (aiohttp, sqlite3, OSError) are translated into these at the boundary
where they happen, so the connection loop decides what to do from the type alone. An
error's ``exit_code`` is what the agent process exits with when the error ends it.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""

    exit_code = 1


class ConfigError(AgentError):
    """The agent's settings are missing or invalid; it cannot start."""

    exit_code = 2


class StateError(AgentError):
    """The state directory or a file in it cannot be used."""

    exit_code = 2


class JournalError(StateError):
    """The run journal failed to read or write."""


class EnrollmentRefused(AgentError):
    """The server refused the enrolment token; retrying cannot help."""

    exit_code = 2


class CredentialRevoked(AgentError):
    """An administrator revoked this machine's credential."""

    exit_code = 3


class UnknownCredential(AgentError):
    """The server does not know this machine's credential (it may have lost it)."""

    exit_code = 3


class DuplicateMachine(AgentError):
    """Another live agent already holds this machine id (typically a cloned image)."""


class ServerError(AgentError):
    """The server answered with an error that no more specific class covers."""

    def __init__(self, message: str, *, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TransportError(AgentError):
    """The connection to the server failed or dropped; try again later."""


class WebSocketUnavailable(TransportError):
    """The WebSocket handshake failed in a way that HTTP long-poll may get around."""


class PayloadInvalid(AgentError):
    """A run's payload does not validate for its command type."""


class PowerError(AgentError):
    """The power backend could not shut down or reboot the machine."""


class ActionFailed(AgentError):
    """An action could not do what it was asked; the message says why, in words."""


class FetchError(ActionFailed):
    """A download failed: unreachable, refused, too large or not the expected content."""

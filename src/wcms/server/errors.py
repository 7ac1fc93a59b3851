"""The server's error hierarchy; one handler turns these into JSON error bodies."""

from __future__ import annotations


class WcmsError(Exception):
    """Base of every error the server reports to a client."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class BadRequest(WcmsError):
    """The request is malformed or fails validation."""

    status_code = 422
    code = "invalid"


class Unauthorized(WcmsError):
    """No valid credential was presented."""

    status_code = 401
    code = "unauthorized"


class Forbidden(WcmsError):
    """The credential is valid but may not do this."""

    status_code = 403
    code = "forbidden"


class NotFound(WcmsError):
    """The thing asked for does not exist."""

    status_code = 404
    code = "not_found"


class Conflict(WcmsError):
    """The request conflicts with the current state."""

    status_code = 409
    code = "conflict"


class PolicyViolation(WcmsError):
    """A policy refuses the request; the message says which and why."""

    status_code = 422
    code = "policy_violation"


class PayloadTooLarge(WcmsError):
    """The request body is larger than the server accepts."""

    status_code = 413
    code = "payload_too_large"


class TooManyRequests(WcmsError):
    """The caller is over a rate limit; ``retry_after`` says how many seconds to wait."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 60):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StorageError(WcmsError):
    """The database failed; the request was not applied. ``retryable``: it is away (down,
    full, locked) and the same write may work later; otherwise it refused the values."""

    status_code = 503
    code = "storage_unavailable"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable

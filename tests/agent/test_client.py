"""How the agent reads the server's error answers."""

from __future__ import annotations

import pytest

from wcms.agent.client import raise_for_answer
from wcms.agent.errors import (
    AgentError,
    CredentialRevoked,
    DuplicateMachine,
    EnrollmentRefused,
    ServerError,
    UnknownCredential,
)
from wcms.protocol import ErrorBody


def body(code: str, message: str = "because") -> bytes:
    return b'{"error": ' + ErrorBody(code=code, message=message).model_dump_json().encode() + b"}"


@pytest.mark.parametrize(
    ("status", "answer", "enrolling", "error", "exit_code"),
    [
        (401, body("invalid_token"), True, EnrollmentRefused, 2),
        (401, body("token_expired"), True, EnrollmentRefused, 2),
        (403, body("token_used_up"), True, EnrollmentRefused, 2),
        (401, body("unauthorized"), True, EnrollmentRefused, 2),
        (409, body("duplicate_machine"), True, DuplicateMachine, 1),
        (401, body("credential_revoked"), False, CredentialRevoked, 3),
        (401, body("unknown_credential"), False, UnknownCredential, 3),
        (409, body("duplicate_machine"), False, DuplicateMachine, 1),
        (401, body("unauthorized"), False, ServerError, 1),
        (502, b"<html>Bad Gateway</html>", False, ServerError, 1),
    ],
)
def test_error_answers_become_the_right_exception(
    status: int, answer: bytes, enrolling: bool, error: type[AgentError], exit_code: int
) -> None:
    with pytest.raises(error) as caught:
        raise_for_answer(status, answer, enrolling=enrolling)
    assert caught.value.exit_code == exit_code


def test_the_server_message_is_kept() -> None:
    with pytest.raises(ServerError, match="server answered 500 boom: it broke") as caught:
        raise_for_answer(500, body("boom", "it broke"))
    assert (caught.value.status, caught.value.code) == (500, "boom")

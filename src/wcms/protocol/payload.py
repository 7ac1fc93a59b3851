"""The base of every command payload."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict

from wcms.protocol.bounds import Bounded


class Payload(Bounded):
    """Base of every command payload: strict, no unknown fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, defer_build=True)

    # Names of fields whose values are secrets; they are sealed on the server and
    # never stored, logged or echoed in clear.
    secret_fields: ClassVar[tuple[str, ...]] = ()

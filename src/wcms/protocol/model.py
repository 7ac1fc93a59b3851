"""The base of the agent protocol's models."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from wcms.protocol.bounds import Bounded

MachineId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$",
        description="Stable machine id: letters, digits and . _ : @ -",
    ),
]


class Model(Bounded):
    """Base of the agent protocol's models: unknown fields from newer peers are ignored;
    what no column can store (an integer past 64 bits, NUL, a lone surrogate, an
    infinite number) is refused (see :mod:`wcms.protocol.bounds`)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

"""A command for an explicit selection of machines, too many for a selector string."""

from __future__ import annotations

from pydantic import Field

from wcms.protocol.admin import CommandCreate
from wcms.protocol.messages import MachineId


class BulkCommandCreate(CommandCreate):
    """Like :class:`CommandCreate`, for the machines listed in ``targets``; the
    ``selector`` is then only the label the command is listed under."""

    selector: str = Field(
        default="selection",
        min_length=1,
        max_length=512,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Label for the command, e.g. 'A101: 12 selected'",
    )
    targets: list[MachineId] = Field(min_length=1, max_length=10000)

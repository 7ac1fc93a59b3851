"""Admin API bodies for rooms, their seat layout, and machines' status history."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from wcms.protocol.bounds import Bounded

ROOM_PATTERN = r"^[\w.@-][\w .@-]{0,127}$"
RoomName = Annotated[str, Field(min_length=1, max_length=128, pattern=ROOM_PATTERN)]
# A seat is "ROW-COL", both counted from 1: "2-5" is the fifth seat of the second row.
SEAT_PATTERN = r"^[1-9][0-9]{0,2}-[1-9][0-9]{0,2}$"
MAX_GRID = 60


class RoomCreate(Bounded):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: RoomName
    rows: int = Field(default=5, ge=1, le=MAX_GRID)
    cols: int = Field(default=8, ge=1, le=MAX_GRID)


class RoomPatch(Bounded):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: RoomName | None = None
    rows: int | None = Field(default=None, ge=1, le=MAX_GRID)
    cols: int | None = Field(default=None, ge=1, le=MAX_GRID)


class RoomOut(BaseModel):
    name: str
    rows: int
    cols: int
    machines: int = 0
    online: int = 0
    defined: bool = Field(
        default=True, description="False for a room that machines name but no one created yet"
    )


class LayoutUpdate(Bounded):
    """Where machines sit: ``{"lab-01": "1-1", "lab-02": null}`` (null: off the grid,
    back to the unplaced tray)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    seats: dict[str, str | None] = Field(max_length=10000)


class RoomLayout(BaseModel):
    room: RoomOut
    seats: dict[str, str | None] = Field(description="Machine id -> seat of every machine here")


HistoryRange = Literal["1h", "24h", "7d", "90d"]


class StatusHistory(BaseModel):
    """A machine's averaged measurements, one point per bucket, as parallel arrays."""

    machine_id: str
    range: HistoryRange
    bucket_s: int
    t: list[int] = Field(description="Bucket start, seconds since the epoch (UTC)")
    cpu: list[float | None]
    ram: list[float | None]
    disk: list[float | None] = Field(description="Fullest disk's used percent")

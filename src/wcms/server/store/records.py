"""Typed records at the store boundary, and the one place rows become records.

Store functions take and return frozen dataclasses, never SQLAlchemy rows or loose
dicts. Each table's store module declares its records and builds its mapper once with
:func:`mapper`; :func:`columns` selects exactly the columns a record holds, so a column
renamed in the schema but not in the record fails at the first query of any test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, Row, Table

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")
# A result row of any shape.
AnyRow = Row[*tuple[Any, ...]]


def field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


def mapper(cls: type[R], *, omit: Sequence[str] = ()) -> Callable[[AnyRow], R]:
    """A function that makes a ``cls`` from a row holding its fields; fields named in
    ``omit`` (its last ones, with defaults) are not read from the row."""
    names = field_names(cls)
    kept = names[: len(names) - len(omit)]
    if set(names[len(kept) :]) != set(omit):
        raise TypeError(f"{cls.__name__}: omitted fields must be its last ones")

    def to_record(row: AnyRow) -> R:
        # Positional: this runs for every row of every read, fleet-wide ones included.
        mapping = row._mapping
        return cls(*[mapping[name] for name in kept])

    return to_record


def columns(
    table: Table, cls: type[DataclassInstance], *, omit: Sequence[str] = ()
) -> list[ColumnElement[Any]]:
    """The columns of ``table`` that ``cls`` holds, in its field order, but ``omit``."""
    return [table.c[name] for name in field_names(cls) if name not in omit]


# Column name -> value: the form SQLAlchemy's insert and update take.
def values(record: DataclassInstance, *, skip: Sequence[str] = ()) -> dict[str, Any]:
    """A record's fields as column values for an insert (shallow: a payload stays itself)."""
    return {name: getattr(record, name) for name in field_names(type(record)) if name not in skip}

"""Alembic environment: runs on the connection handed in by wcms.server.store.migrate."""

from __future__ import annotations

from alembic import context

from wcms.server.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `wcms migrate` (it supplies the connection)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

"""commands say whether they are idempotent (an interrupted run is retried only then);
run exit codes are 64-bit (Windows exit codes such as 0xC0000005 exceed 32 bits)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# On SQLite a batch operation that rebuilds a table drops the old one, which with
# foreign keys on deletes the rows of every table that cascades from it (the runs of
# the commands, the events of the runs). So nothing here rebuilds a table: a literal
# default lets SQLite add the column in place ('0' is false for both databases), and
# SQLite's INTEGER already holds 64 bits.
_FALSE = "0"


def upgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("idempotent", sa.Boolean(), nullable=False, server_default=_FALSE)
        )
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table("command_runs", schema=None) as batch_op:
            batch_op.alter_column(
                "exit_code",
                existing_type=sa.Integer(),
                type_=sa.BigInteger(),
                existing_nullable=True,
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table("command_runs", schema=None) as batch_op:
            batch_op.alter_column(
                "exit_code",
                existing_type=sa.BigInteger(),
                type_=sa.Integer(),
                existing_nullable=True,
            )
    # Not in a batch: SQLite (3.35 and later) drops a column in place.
    op.drop_column("commands", "idempotent")

"""programs an agent supervises (game servers), each machine's program set revision,
and the programs' state changes as the agents numbered them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FALSE = "0"


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("machine_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("preset", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("sealed_secrets", sa.Text(), nullable=True),
        sa.Column("desired", sa.String(length=16), nullable=False),
        sa.Column("restart_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False, server_default="stopped"),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_exit", sa.JSON(), nullable=True),
        sa.Column("players", sa.Integer(), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("rss_bytes", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.JSON(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("troubled", sa.Boolean(), nullable=False, server_default=_FALSE),
        sa.ForeignKeyConstraint(
            ["machine_id"],
            ["machines.id"],
            name=op.f("fk_programs_machine_id_machines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
    )
    op.create_index("uq_programs_machine_name", "programs", ["machine_id", "name"], unique=True)
    op.create_table(
        "program_sets",
        sa.Column("machine_id", sa.String(length=128), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("applied_revision", sa.BigInteger(), nullable=True),
        sa.Column("acked_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["machine_id"],
            ["machines.id"],
            name=op.f("fk_program_sets_machine_id_machines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("machine_id", name=op.f("pk_program_sets")),
    )
    op.create_table(
        "program_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("machine_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("exit", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_events")),
    )
    op.create_index(
        "uq_program_events_machine_seq", "program_events", ["machine_id", "seq"], unique=True
    )
    op.create_index(
        "ix_program_events_machine_name", "program_events", ["machine_id", "name", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_program_events_machine_name", table_name="program_events")
    op.drop_index("uq_program_events_machine_seq", table_name="program_events")
    op.drop_table("program_events")
    op.drop_table("program_sets")
    op.drop_index("uq_programs_machine_name", table_name="programs")
    op.drop_table("programs")

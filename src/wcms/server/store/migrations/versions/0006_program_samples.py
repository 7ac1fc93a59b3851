"""programs' measurements over time: one sample per running program every half
heartbeat interval at most

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-17
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "program_samples",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("machine_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("rss_bytes", sa.BigInteger(), nullable=True),
        sa.Column("players", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_samples")),
    )
    op.create_index(
        "ix_program_samples_machine_name_at", "program_samples", ["machine_id", "name", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_program_samples_machine_name_at", table_name="program_samples")
    op.drop_table("program_samples")

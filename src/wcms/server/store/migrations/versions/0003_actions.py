"""files (uploads to print, screenshots), per machine/room action policies; run
results with data, live progress and a wake relay

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("machine_id", sa.String(length=128), nullable=True),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_index("ix_files_kind_created", "files", ["kind", "created_at"])
    op.create_index("ix_files_machine", "files", ["machine_id"])
    op.create_table(
        "action_policies",
        sa.Column("scope", sa.String(length=160), nullable=False),
        sa.Column("disabled", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_action_policies")),
    )
    with op.batch_alter_table("command_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result_data", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("progress", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("progress_note", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("relay_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("command_runs", schema=None) as batch_op:
        batch_op.drop_column("relay_id")
        batch_op.drop_column("progress_note")
        batch_op.drop_column("progress")
        batch_op.drop_column("result_data")
    op.drop_table("action_policies")
    op.drop_index("ix_files_machine", table_name="files")
    op.drop_index("ix_files_kind_created", table_name="files")
    op.drop_table("files")

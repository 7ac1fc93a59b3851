"""an alert's messages found by their alert

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_alert", "deliveries", ["alert_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_alert", table_name="deliveries")

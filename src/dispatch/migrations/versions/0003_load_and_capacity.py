"""Loads of cases and capacities of collectors.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 22:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply the revision."""
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("load", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("collectors") as batch:
        batch.add_column(sa.Column("capacity", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Undo the revision."""
    with op.batch_alter_table("collectors") as batch:
        batch.drop_column("capacity")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("load")

"""Outcome details from the collector's page: address visited, money taken, note, check-in.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("address", sa.Text(), server_default="", nullable=False),
    sa.Column("paid_cents", sa.BigInteger(), nullable=True),
    sa.Column("note", sa.Text(), server_default="", nullable=False),
    sa.Column("checkin_lat", sa.Float(), nullable=True),
    sa.Column("checkin_lon", sa.Float(), nullable=True),
    sa.Column("checkin_accuracy_m", sa.Float(), nullable=True),
    sa.Column("checkin_distance_m", sa.Float(), nullable=True),
    sa.Column("far_from_address", sa.Boolean(), server_default=sa.false(), nullable=False),
)


def upgrade() -> None:
    """Apply the revision."""
    with op.batch_alter_table("outcomes") as batch:
        for column in _COLUMNS:
            batch.add_column(column)


def downgrade() -> None:
    """Undo the revision."""
    with op.batch_alter_table("outcomes") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column.name)

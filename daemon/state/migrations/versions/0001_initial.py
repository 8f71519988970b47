"""Initial schema: routing ledger, connector cursors, training store, retrain runs.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the four tables; types are spelled out here so later edits to schema.py never rewrite history."""
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connector", sa.String(255), nullable=False),
        sa.Column("ticket_id", sa.String(1000), nullable=False),
        sa.Column("model_version", sa.String(255), nullable=True),
        sa.Column("predictions", sa.JSON(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.UniqueConstraint("connector", "ticket_id", name="uq_ledger_connector_ticket_id"),
    )
    op.create_index("ix_ledger_state_connector", "ledger", ["state", "connector"])
    op.create_table(
        "cursors",
        sa.Column("connector", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", "kind", name="pk_cursors"),
    )
    op.create_table(
        "training",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connector", sa.String(255), nullable=False),
        sa.Column("ticket_id", sa.String(1000), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("priority", sa.String(255), nullable=True),
        sa.Column("language", sa.String(32), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("harvested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training"),
        sa.UniqueConstraint("connector", "ticket_id", name="uq_training_connector_ticket_id"),
    )
    op.create_index("ix_training_closed_at", "training", ["closed_at"])
    op.create_index("ix_training_harvested_at", "training", ["harvested_at"])
    op.create_table(
        "retrain_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retrain_runs"),
    )


def downgrade() -> None:
    """Drop everything the initial revision created."""
    op.drop_table("retrain_runs")
    op.drop_index("ix_training_harvested_at", table_name="training")
    op.drop_index("ix_training_closed_at", table_name="training")
    op.drop_table("training")
    op.drop_table("cursors")
    op.drop_index("ix_ledger_state_connector", table_name="ledger")
    op.drop_table("ledger")

"""What `ticketd forget` erased (tickets by key, people by the digest of their address); report indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the `forgotten` table and the two indexes that keep `ticketd report` off the ticket text."""
    op.create_table(
        "forgotten",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("connector", sa.String(255), nullable=True),
        sa.Column("ticket_id", sa.String(1000), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("training_rows", sa.Integer(), nullable=False),
        sa.Column("ledger_rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_forgotten"),
    )
    op.create_index(
        "ix_training_connector_ticket_id_queue_priority", "training", ["connector", "ticket_id", "queue", "priority"]
    )
    op.create_index(
        "ix_ledger_missed_target",
        "ledger",
        ["connector"],
        sqlite_where=sa.text("json_extract(decision, '$.\"missing\"') IS NOT NULL"),
        postgresql_where=sa.text("(decision ->> 'missing') IS NOT NULL"),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_ledger_missed_target", table_name="ledger")
    op.drop_index("ix_training_connector_ticket_id_queue_priority", table_name="training")
    op.drop_table("forgotten")

"""What several replicas share: the model store (chunked archives, the `current` pointer), datasets, jobs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the model store's, datasets' and training jobs' tables (SQLite gets them too, empty: one process)."""
    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("model_metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_model_versions"),
        sa.UniqueConstraint("number", name="uq_model_versions_number"),
    )
    op.create_table(
        "model_chunks",
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["version"], ["model_versions.version"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("version", "seq", name="pk_model_chunks"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # ONNX weights do not compress: storing them uncompressed saves PostgreSQL the CPU of trying.
        op.execute("ALTER TABLE model_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
    op.create_table(
        "model_pointer",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stack", sa.JSON(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_pointer"),
    )

    op.create_table(
        "datasets",
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("csv", sa.LargeBinary(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_datasets"),
        sa.UniqueConstraint("number", name="uq_datasets_number"),
    )
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("replica", sa.String(255), nullable=False),
        sa.Column("description", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_jobs"),
    )
    op.create_table(
        "training_now",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("who", sa.String(32), nullable=False),
        sa.Column("replica", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancel", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_training_now"),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("training_now")
    op.drop_table("training_jobs")
    op.drop_table("datasets")
    op.drop_table("model_pointer")
    op.drop_table("model_chunks")
    op.drop_table("model_versions")

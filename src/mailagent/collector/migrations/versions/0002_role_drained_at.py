"""Hosts get a role (relay/hub) and drained_at (when `mailagent drain` said the host is empty)
in place of the drained flag; a host marked drained keeps a time (its last report, else its
registration).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from mailagent.collector.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="relay"))
        batch.add_column(sa.Column("drained_at", UTCDateTime))
    op.execute("UPDATE hosts SET drained_at = COALESCE(last_seen, registered_at) WHERE drained")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("drained")


def downgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("drained", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute("UPDATE hosts SET drained = (drained_at IS NOT NULL)")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("drained_at")
        batch.drop_column("role")

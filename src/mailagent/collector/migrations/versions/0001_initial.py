"""The first schema: hosts, reports, hourly rollups, alerts, nonces.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from mailagent.collector.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("registered_at", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime),
        sa.Column("drained", sa.Boolean, nullable=False),
        sa.Column("interval_seconds", sa.Float),
        sa.Column("latest", sa.Text),
        sa.Column("conditions", sa.Text),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("generated_at", UTCDateTime, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        *[sa.Column(name, sa.Integer) for name in (
            "queue_maildrop", "queue_incoming", "queue_active", "queue_deferred", "queue_hold")],
        sa.Column("oldest_age_seconds", sa.Float),
        sa.Column("queue_bytes", sa.Integer),
        *[sa.Column(name, sa.Integer) for name in (
            "sent", "deferred", "bounced", "expired", "rejected", "sasl_auth_failures")],
        sa.Column("relay_reachable", sa.Boolean),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_reports_host_generated", "reports", ["host", "generated_at"])
    op.create_index("ix_reports_generated", "reports", ["generated_at"])
    op.create_table(
        "report_hourly",
        sa.Column("host", sa.String(253), primary_key=True),
        sa.Column("hour", UTCDateTime, primary_key=True),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("queue_active_max", sa.Integer),
        sa.Column("queue_deferred_max", sa.Integer),
        sa.Column("queue_hold_max", sa.Integer),
        sa.Column("oldest_age_max", sa.Float),
        *[sa.Column(name, sa.Integer) for name in (
            "sent", "deferred", "bounced", "expired", "rejected", "sasl_auth_failures")],
    )
    op.create_index("ix_report_hourly_hour", "report_hourly", ["hour"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("resolved_at", UTCDateTime),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_alerts_state", "alerts", ["state"])
    op.create_index("ix_alerts_host", "alerts", ["host"])
    op.create_table(
        "nonces",
        sa.Column("host", sa.String(253), primary_key=True),
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("seen_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_nonces_seen_at", "nonces", ["seen_at"])


def downgrade() -> None:
    for table in ("nonces", "alerts", "report_hourly", "reports", "hosts"):
        op.drop_table(table)

"""service_desk numbers: request the backfill of `ticket_sla_outcomes` (the tickets last changed
before 0011n have no rows); the service performs it in batches (usecases/outcomes_backfill.py)

The migration only requests the job (one `sla_sweeps` row, cursor "" = from the start): the
outcomes are the SLA domain's, computed by the running code, never by a frozen copy here, and
an upgrade does not wait for every ticket's log to be replayed.

Revision ID: 0013b
Revises: 0011n
Create Date: 2026-12-03 17:50:00
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0013b'
down_revision = '0011n'
branch_labels = None
depends_on = None

JOB = 'ticket_sla_outcomes'  # usecases/outcomes_backfill.BACKFILL

sweeps = sa.table('sla_sweeps', sa.column('name', sa.String(32)),
                  sa.column('cursor', sa.String(64)),
                  sa.column('requested_at', shared.db.UTCDateTime(timezone=True)),
                  sa.column('updated_at', shared.db.UTCDateTime(timezone=True)))


def upgrade() -> None:
    now = datetime.now(UTC)
    op.execute(sweeps.delete().where(sweeps.c.name == JOB))
    op.bulk_insert(sweeps, [{'name': JOB, 'cursor': '', 'requested_at': now,
                             'updated_at': now}])


def downgrade() -> None:
    op.execute(sweeps.delete().where(sweeps.c.name == JOB))

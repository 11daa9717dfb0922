"""service_desk numbers: each ticket's SLA outcomes kept on write, and the entries' index by
kind and instant (reopen rate, backlog at a period's end)

Revision ID: 0011n
Revises: 0006r
Create Date: 2026-12-03 14:20:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0011n'
down_revision = '0006r'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ticket_sla_outcomes',
    sa.Column('ticket_id', sa.String(length=36), nullable=False),
    sa.Column('target', sa.String(length=32), nullable=False),
    sa.Column('policy_id', sa.String(length=36), nullable=True),
    sa.Column('business', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('breached', sa.Boolean(), nullable=False),
    sa.Column('elapsed_seconds', sa.BigInteger(), nullable=False),
    sa.Column('due_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('achieved_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', 'target', name=op.f('pk_ticket_sla_outcomes'))
    )
    op.create_index('ix_ticket_sla_outcomes_achieved', 'ticket_sla_outcomes',
                    ['target', 'achieved_at'], unique=False)
    op.create_index('ix_ticket_entries_kind_at', 'ticket_entries', ['kind', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ticket_entries_kind_at', table_name='ticket_entries')
    op.drop_index('ix_ticket_sla_outcomes_achieved', table_name='ticket_sla_outcomes')
    op.drop_table('ticket_sla_outcomes')

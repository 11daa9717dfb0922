"""service_desk SLA scheduling: the schedules published, rule commands done, the sweep

Revision ID: 0006r
Revises: 0006g
Create Date: 2026-12-03 11:00:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0006r'
down_revision = '0006g'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sla_schedules',
    sa.Column('ticket_id', sa.String(length=64), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('policy_id', sa.String(length=36), nullable=True),
    sa.Column('next_check_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('schedule', sa.JSON(), nullable=False),
    sa.Column('computed_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_sla_schedules'))
    )
    op.create_index('ix_sla_schedules_next_check', 'sla_schedules', ['next_check_at'],
                    unique=False)
    op.create_table('sla_commands',
    sa.Column('command_id', sa.String(length=200), nullable=False),
    sa.Column('ticket_id', sa.String(length=64), nullable=False),
    sa.Column('command', sa.String(length=32), nullable=False),
    sa.Column('done_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('command_id', name=op.f('pk_sla_commands'))
    )
    op.create_table('sla_sweeps',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('cursor', sa.String(length=64), nullable=True),
    sa.Column('requested_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sla_sweeps'))
    )


def downgrade() -> None:
    op.drop_table('sla_sweeps')
    op.drop_table('sla_commands')
    op.drop_index('ix_sla_schedules_next_check', table_name='sla_schedules')
    op.drop_table('sla_schedules')

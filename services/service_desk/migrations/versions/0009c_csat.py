"""service_desk CSAT: one satisfaction survey per ticket, created at its first solve

Revision ID: 0009c
Revises: 0005f
Create Date: 2026-12-03 11:10:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0009c'
down_revision = '0005f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('csat_surveys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('ticket_id', sa.String(length=36), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('requester_email', sa.String(length=320), nullable=False),
    sa.Column('assignee_id', sa.String(length=64), nullable=True),
    sa.Column('group_id', sa.String(length=64), nullable=True),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rating', sa.String(length=8), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('answered_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_csat_surveys_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_csat_surveys')),
    sa.UniqueConstraint('ticket_id', name=op.f('uq_csat_surveys_ticket_id')),
    sa.UniqueConstraint('token', name=op.f('uq_csat_surveys_token'))
    )
    with op.batch_alter_table('csat_surveys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_csat_surveys_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index('ix_csat_surveys_created', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_csat_surveys_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_csat_surveys_month'), ['month'], unique=False)


def downgrade() -> None:
    op.drop_table('csat_surveys')

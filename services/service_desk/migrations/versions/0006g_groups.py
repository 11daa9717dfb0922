"""service_desk groups: ticket groups and members, routing rules, web forms and their rate
counters; tickets gain product, language and merged_into_id

Revision ID: 0006g
Revises: 0010p
Create Date: 2026-12-03 11:15:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0006g'
down_revision = '0010p'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ticket_groups',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('manager_id', sa.String(length=64), nullable=True),
    sa.Column('strategy', sa.String(length=32), nullable=False),
    sa.Column('skills_matching', sa.Boolean(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('last_assignee_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_groups')),
    sa.UniqueConstraint('name', name=op.f('uq_ticket_groups_name'))
    )
    op.create_table('ticket_group_members',
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('available', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['ticket_groups.id'], name=op.f('fk_ticket_group_members_group_id_ticket_groups')),
    sa.PrimaryKeyConstraint('group_id', 'user_id', name=op.f('pk_ticket_group_members'))
    )
    with op.batch_alter_table('ticket_group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_group_members_user_id'), ['user_id'], unique=False)
    op.create_table('ticket_routing_rules',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['ticket_groups.id'], name=op.f('fk_ticket_routing_rules_group_id_ticket_groups')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_routing_rules')),
    sa.UniqueConstraint('name', name=op.f('uq_ticket_routing_rules_name'))
    )
    with op.batch_alter_table('ticket_routing_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_routing_rules_position'), ['position'], unique=False)
    op.create_table('ticket_forms',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('allowed_origins', sa.JSON(), nullable=False),
    sa.Column('default_group_id', sa.String(length=36), nullable=True),
    sa.Column('default_type', sa.String(length=32), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('signing_key', sa.String(length=64), nullable=False),
    sa.Column('min_fill_seconds', sa.Integer(), nullable=False),
    sa.Column('rate_per_minute', sa.Integer(), nullable=False),
    sa.Column('ip_rate_per_minute', sa.Integer(), nullable=False),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['default_group_id'], ['ticket_groups.id'], name=op.f('fk_ticket_forms_default_group_id_ticket_groups')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_forms')),
    sa.UniqueConstraint('key', name=op.f('uq_ticket_forms_key'))
    )
    op.create_table('ticket_form_hits',
    sa.Column('bucket', sa.String(length=200), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'window_start', name=op.f('pk_ticket_form_hits'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('product', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('merged_into_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_group_id'), ['group_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_group_id'))
        batch_op.drop_column('merged_into_id')
        batch_op.drop_column('language')
        batch_op.drop_column('product')
    op.drop_table('ticket_form_hits')
    op.drop_table('ticket_forms')
    with op.batch_alter_table('ticket_routing_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_routing_rules_position'))
    op.drop_table('ticket_routing_rules')
    with op.batch_alter_table('ticket_group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_group_members_user_id'))
    op.drop_table('ticket_group_members')
    op.drop_table('ticket_groups')

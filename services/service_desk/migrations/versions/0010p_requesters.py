"""service_desk requesters: the sales customers and contacts projection; tickets' contact and
an index on their customer

Revision ID: 0010p
Revises: 0006m
Create Date: 2026-12-03 11:25:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0010p'
down_revision = '0006m'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('desk_customers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('tier', sa.String(length=32), nullable=True),
    sa.Column('owner_id', sa.String(length=64), nullable=True),
    sa.Column('merged_into_id', sa.String(length=64), nullable=True),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_customers'))
    )
    op.create_table('desk_contacts',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_contacts'))
    )
    with op.batch_alter_table('desk_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_desk_contacts_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_desk_contacts_email'), ['email'], unique=False)
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_customer_id'), ['customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_customer_id'))
        batch_op.drop_column('contact_id')
    op.drop_table('desk_contacts')
    op.drop_table('desk_customers')

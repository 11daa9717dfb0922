"""contracts attachments: a contract's files in their own table (the unused JSON column goes)

Revision ID: 0011f
Revises: 0009n
Create Date: 2026-12-03 12:05:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0011f'
down_revision = '0009n'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contract_attachments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('contract_id', sa.String(length=36), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_contract_attachments_contract_id_contracts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_attachments'))
    )
    with op.batch_alter_table('contract_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_attachments_contract_id'), ['contract_id'], unique=False)
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_column('attachments')


def downgrade() -> None:
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attachments', sa.JSON(), nullable=False,
                                      server_default='[]'))
    op.drop_table('contract_attachments')

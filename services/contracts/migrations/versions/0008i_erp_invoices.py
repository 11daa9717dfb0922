"""erp: orders to the ERP and invoices (开票)

Revision ID: 0008i
Revises: 0011f
Create Date: 2026-12-03 11:00:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0008i'
down_revision = '0011f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contract_orders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('contract_id', sa.String(length=36), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('amount', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('source', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('shipped_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('erp_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_orders')),
    sa.UniqueConstraint('contract_id', name=op.f('uq_contract_orders_contract_id')),
    sa.UniqueConstraint('number', name=op.f('uq_contract_orders_number'))
    )
    op.create_table('contract_invoices',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('contract_id', sa.String(length=36), nullable=False),
    sa.Column('receipt_id', sa.String(length=36), nullable=True),
    sa.Column('instalment_id', sa.String(length=36), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('tax_number', sa.String(length=18), nullable=True),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('issued_on', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('void_reason', sa.Text(), nullable=True),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_invoices'))
    )
    with op.batch_alter_table('contract_invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_invoices_contract_id'), ['contract_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contract_invoices_instalment_id'), ['instalment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contract_invoices_receipt_id'), ['receipt_id'], unique=False)
        batch_op.create_index('uq_contract_invoices_type_number', ['type', 'number'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('contract_invoices', schema=None) as batch_op:
        batch_op.drop_index('uq_contract_invoices_type_number')
        batch_op.drop_index(batch_op.f('ix_contract_invoices_receipt_id'))
        batch_op.drop_index(batch_op.f('ix_contract_invoices_instalment_id'))
        batch_op.drop_index(batch_op.f('ix_contract_invoices_contract_id'))
    op.drop_table('contract_invoices')
    op.drop_table('contract_orders')

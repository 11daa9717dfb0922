"""numbers: report indexes (collection, aging, DSO, approval cycle times)

Revision ID: 0009n
Revises: 0007o
Create Date: 2026-12-03 11:30:00
"""
from alembic import op


revision = '0009n'
down_revision = '0007o'  # chained after the overdue part's (on main first)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_contract_instalments_due_report', 'contract_instalments',
                    ['due_date', 'status', 'contract_id', 'amount', 'paid'])
    op.create_index('ix_contract_receipts_received_report', 'contract_receipts',
                    ['received_on', 'contract_id', 'amount'])
    op.create_index('ix_contracts_status_owner', 'contracts', ['status', 'owner_id'])
    op.create_index('ix_approval_instances_submitted', 'approval_instances', ['submitted_at'])


def downgrade() -> None:
    op.drop_index('ix_approval_instances_submitted', table_name='approval_instances')
    op.drop_index('ix_contracts_status_owner', table_name='contracts')
    op.drop_index('ix_contract_receipts_received_report', table_name='contract_receipts')
    op.drop_index('ix_contract_instalments_due_report', table_name='contract_instalments')

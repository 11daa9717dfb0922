"""overdue instalments and renewals

Revision ID: 0007o
Revises: 0006d
Create Date: 2026-12-03 11:10:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0007o'
down_revision = '0006d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contract_instalments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overdue_at', shared.db.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_contract_instalments_overdue_sweep',
                              ['overdue_at', 'due_date'], unique=False)

    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('renewed_by_id', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_column('renewed_by_id')

    with op.batch_alter_table('contract_instalments', schema=None) as batch_op:
        batch_op.drop_index('ix_contract_instalments_overdue_sweep')
        batch_op.drop_column('overdue_at')

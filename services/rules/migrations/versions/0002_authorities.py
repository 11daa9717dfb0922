"""who rules and webhook subscriptions act for

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 04:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null is the organisation: what existed before (shipped rules, admins' subscriptions).
    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authority', sa.JSON(), nullable=True))
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authority', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('authority')
    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.drop_column('authority')

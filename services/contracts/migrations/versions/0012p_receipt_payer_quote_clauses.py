"""c-receipts: receipts' source and payer, contracts' quote_id, clauses as {code, title, text}

- `contract_receipts.source` (user / erp) and `payer_name`, `payer_account`,
  `payer_reference`. Receipts stored before: `erp` when the ERP's reference of the receipt is
  in the inbox (the ERP handler records `erp.payment_received:<reference>` there, kept for
  good), else `user`; the payer's name from the outbox's `receipt_recorded` when its row is
  still there (the relay prunes published rows: otherwise it stays null).
- `contracts.quote_id`: signed contracts whose ERP order took its lines from a quote get that
  quote (the order's `source.quote_id`); others stay null.
- `contracts.clauses`: every clause becomes `{code, title, text}` (the one shape
  create_contract and update_contract take): `code` kept (else `clause-<n>`), `title` from
  title / name / heading, `text` from text / content / body (else the JSON of the clause).
  A contract whose clauses this changed keeps the old list in `clauses_original`; the
  downgrade puts it back.

Revision ID: 0012p
Revises: 0009ca
Create Date: 2026-12-03 14:30:00
"""
import json

from alembic import op
import sqlalchemy as sa

from shared.inbox import command_id


revision = '0012p'
down_revision = '0009ca'
branch_labels = None
depends_on = None

# the inbox row usecases/erp.py records for each ERP payment reference
ERP_REFERENCE_HANDLER = 'contracts.erp.payment_received:reference'

contracts = sa.table('contracts', sa.column('id', sa.String), sa.column('clauses', sa.JSON),
                     sa.column('quote_id', sa.String),
                     sa.column('clauses_original', sa.JSON))
receipts = sa.table('contract_receipts', sa.column('id', sa.String),
                    sa.column('reference', sa.String), sa.column('source', sa.String),
                    sa.column('payer_name', sa.String))
orders = sa.table('contract_orders', sa.column('contract_id', sa.String),
                  sa.column('source', sa.JSON))
inbox = sa.table('inbox', sa.column('event_id', sa.String), sa.column('handler', sa.String))
outbox = sa.table('outbox', sa.column('event_type', sa.String),
                  sa.column('envelope', sa.Text))


def _text(value, limit):
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.strip()
    return text[:limit] if text else None


def canonical_clause(clause, position):
    """One stored clause as {code, title, text}."""
    if not isinstance(clause, dict):
        return {'code': f'clause-{position}', 'title': None,
                'text': _text(clause, 20_000) or '-'}
    code = _text(clause.get('code'), 64) or f'clause-{position}'
    title = next((_text(clause.get(k), 200) for k in ('title', 'name', 'heading')
                  if _text(clause.get(k), 200)), None)
    text = next((clause.get(k) for k in ('text', 'content', 'body')
                 if isinstance(clause.get(k), str) and clause.get(k).strip()), None)
    if text is None:
        rest = {k: v for k, v in clause.items() if k not in ('code', 'title')}
        text = json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else '-'
    return {'code': code, 'title': title, 'text': text[:20_000]}


def upgrade() -> None:
    with op.batch_alter_table('contract_receipts') as batch:
        batch.add_column(sa.Column('source', sa.String(length=8), nullable=False,
                                   server_default='user'))
        batch.add_column(sa.Column('payer_name', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('payer_account', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('payer_reference', sa.String(length=100), nullable=True))
    with op.batch_alter_table('contracts') as batch:
        batch.add_column(sa.Column('quote_id', sa.String(length=36), nullable=True))
        batch.add_column(sa.Column('clauses_original', sa.JSON(), nullable=True))

    bind = op.get_bind()
    erp_ids = set(bind.execute(sa.select(inbox.c.event_id).where(
        inbox.c.handler == ERP_REFERENCE_HANDLER)).scalars())
    if erp_ids:
        for receipt_id, reference in bind.execute(sa.select(receipts.c.id, receipts.c.reference)
                                                  .where(receipts.c.reference.is_not(None))):
            if command_id(f'erp.payment_received:{reference}') in erp_ids:
                bind.execute(receipts.update().where(receipts.c.id == receipt_id)
                             .values(source='erp'))
    for (envelope,) in bind.execute(sa.select(outbox.c.envelope).where(
            outbox.c.event_type == 'receipt_recorded')):
        try:
            data = json.loads(envelope)['data']
            receipt_id, payer = data['receipt']['id'], data.get('payer')
        except (ValueError, KeyError, TypeError):
            continue
        values = {'source': 'erp'} if data.get('source') == 'erp' else {}
        if isinstance(payer, str) and payer.strip():
            values['payer_name'] = payer.strip()[:200]
        if values:
            bind.execute(receipts.update().where(receipts.c.id == receipt_id).values(**values))

    for contract_id, source in bind.execute(sa.select(orders.c.contract_id, orders.c.source)):
        if isinstance(source, dict) and source.get('kind') == 'quote' and source.get('quote_id'):
            bind.execute(contracts.update().where(contracts.c.id == contract_id)
                         .values(quote_id=source['quote_id']))

    for contract_id, clauses in bind.execute(sa.select(contracts.c.id, contracts.c.clauses)):
        if not clauses:
            continue
        canonical = [canonical_clause(c, n) for n, c in enumerate(clauses, start=1)]
        if canonical != clauses:
            bind.execute(contracts.update().where(contracts.c.id == contract_id)
                         .values(clauses=canonical, clauses_original=clauses))


def downgrade() -> None:
    bind = op.get_bind()
    for contract_id, original in bind.execute(
            sa.select(contracts.c.id, contracts.c.clauses_original)
            .where(contracts.c.clauses_original.is_not(None))):
        if original is not None:
            bind.execute(contracts.update().where(contracts.c.id == contract_id)
                         .values(clauses=original))
    with op.batch_alter_table('contracts') as batch:
        batch.drop_column('clauses_original')
        batch.drop_column('quote_id')
    with op.batch_alter_table('contract_receipts') as batch:
        batch.drop_column('payer_reference')
        batch.drop_column('payer_account')
        batch.drop_column('payer_name')
        batch.drop_column('source')

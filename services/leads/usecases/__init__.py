"""The application layer of the leads service: one function per command or query.

Each opens the transaction, loads the rows, lets the domain check and change them, and records
history and events (through the outbox, in the same transaction). Inputs arrive loaded by the
entrypoints (services/leads/service.py); results leave as the contract's plain dicts.

- `capture`: create_lead (normalise, dedupe, merge or create, first score);
- `queries`: get_lead, list_leads;
- `changes`: behaviours, status, conversion by sales, claim, release, assign, merge;
- `scoring`: the scoring model in force, rescoring and qualification, reading and saving models;
- `common`: what they share (the worker's dependencies, snapshots, history, visible leads).
"""

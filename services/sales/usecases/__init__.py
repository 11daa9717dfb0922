"""The sales service's application layer: one function per command or query. Each opens the
transaction, loads the rows, calls the domain's rules and transitions, records the events and
answers plain dicts. The entrypoints (service.py) only load, call and return.

- `customers`: create, change, tag, assign, find duplicates, merge, list, read;
- `contacts`, `followups`, `pipelines`, `opportunities` (the stage move, the kanban board);
- `conversion`: a qualified lead of the leads service becomes a customer, contact and
  opportunity.
"""

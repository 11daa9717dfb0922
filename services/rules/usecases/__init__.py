"""The rules service's application layer: transactions, rows, domain calls, events.

The event path (the engine, `engine.py`): intake.py -> runs.py -> actions.py / local_actions.py
(assignment.py, recipients.py) -> webhook_queue.py; timers.py and firing.py; email_delivery.py
and webhook_delivery.py; what they read at every event is cached in cached.py, the projections
they keep are projections.py's. The RPC commands and queries: authoring.py, rule_admin.py,
dry_run.py, tasks.py, notifications.py, webhooks.py, members.py, system.py.
"""

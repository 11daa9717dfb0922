"""Rules, rule runs, tasks, notifications, webhooks and assignment."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "rules", __name__, description="Rules, runs, tasks, notifications, webhooks, assignment."
)

"""Customers, contacts, follow-ups, pipelines and opportunities."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "sales", __name__, description="Customers, contacts, follow-ups, pipelines and opportunities."
)

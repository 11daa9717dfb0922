"""Alembic environment of the gateway's database (`python -m shared.migrations gateway`)."""

from services.gateway.models import metadata
from shared.migrations import run_env

run_env(metadata)

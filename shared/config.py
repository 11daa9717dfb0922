"""Configuration from the environment, with defaults that run on one laptop."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def amqp_uri() -> str:
    return env("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


def data_dir() -> Path:
    path = Path(env("CRM_DATA_DIR", str(PROJECT_ROOT / "var" / "data")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(service: str) -> str:
    """`<SERVICE>_DATABASE_URL`, or one SQLite file per service under the data directory."""
    return env(f"{service.upper()}_DATABASE_URL", f"sqlite:///{data_dir() / service}.db")


def rpc_timeout() -> float:
    return float(env("CRM_RPC_TIMEOUT", "10"))


def default_region() -> str:
    return env("CRM_DEFAULT_REGION", "CN")


def default_currency() -> str:
    return env("CRM_DEFAULT_CURRENCY", "CNY")


def timezone_name() -> str:
    return env("CRM_TIMEZONE", "Asia/Shanghai")


def public_url() -> str:
    """The gateway's address as the outside world reaches it (links in e-mails):
    CRM_PUBLIC_URL, else http:// and CRM_GATEWAY_BIND (127.0.0.1:8000)."""
    return env("CRM_PUBLIC_URL", "http://" + env("CRM_GATEWAY_BIND", "127.0.0.1:8000")).rstrip("/")


def nameko_config(**overrides: object) -> dict:
    """The nameko configuration of a service or client process."""
    config: dict = {
        "AMQP_URI": amqp_uri(),
        "serializer": "json",
        "max_workers": int(env("CRM_MAX_WORKERS", "16")),
        "HEARTBEAT": 30,
        "LOGIN_METHOD": "PLAIN",
    }
    config.update(overrides)
    return config

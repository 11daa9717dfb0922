"""API keys: `crm_` and 32 random bytes, shown once; only the key's sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

API_KEY_PREFIX = "crm_"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> tuple[str, str, str]:
    """(key, display prefix, hash); the key itself is shown once and never stored."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:12], hash_api_key(key)

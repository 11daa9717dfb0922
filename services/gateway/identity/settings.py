"""Limits of the authentication layer (create_app reads them from the environment)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AuthSettings:
    """Limits of the authentication layer (create_app reads them from the environment)."""

    trusted_proxy_hops: int = 0
    max_api_keys_per_user: int = 10

"""Signed user tokens (itsdangerous, with the gateway's secret) and that secret."""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from shared import config as shared_config

TOKEN_SALT = "crm-gateway-user-token"


def load_secret_key() -> str:
    """CRM_SECRET_KEY, else a random secret created once (mode 0600) under the data dir.

    Every gunicorn worker must sign with the same secret, so it is shared through a file that
    the first process creates atomically (O_EXCL); the others read it.
    """
    configured = os.environ.get("CRM_SECRET_KEY")
    if configured:
        return configured
    path: Path = shared_config.data_dir() / "gateway-secret"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            secret = path.read_text().strip()
            if secret:
                return secret
            time.sleep(0.02)  # another worker is between create and write
        raise RuntimeError(f"{path} exists but is empty") from None
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


class TokenSigner:
    def __init__(self, secret: str, ttl_seconds: int):
        self._serializer = URLSafeTimedSerializer(secret, salt=TOKEN_SALT)
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, generation: int = 0) -> tuple[str, datetime]:
        token = self._serializer.dumps({"uid": user_id, "gen": generation})
        return token, datetime.now(UTC) + timedelta(seconds=self.ttl_seconds)

    def verify(self, token: str) -> tuple[str, int] | None:
        """(user id, token generation), or None for a forged, tampered or expired token.

        Tokens issued before generations existed carry none and count as generation 0.
        """
        try:
            payload = self._serializer.loads(token, max_age=self.ttl_seconds)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(payload, dict):
            return None
        uid, generation = payload.get("uid"), payload.get("gen", 0)
        if not isinstance(uid, str) or type(generation) is not int:
            return None
        return uid, generation

"""Destination secrets (tokens, passwords, signing secrets) encrypted at rest with Fernet.

The key comes from `CDP_SECRETS_KEY` (one or more Fernet keys, comma-separated, newest first:
the first encrypts, all decrypt, so a key can be rotated); unset, a key is derived from
SECRET_KEY (HKDF-SHA256), so a first run needs nothing set. Secrets are write-only: the API
and pages show which names are set, never their values."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretsUnreadable(RuntimeError):
    """The stored secrets cannot be decrypted with the configured keys."""


def _keys() -> list[bytes]:
    configured = [k.strip() for k in settings.CDP_SECRETS_KEY.split(",") if k.strip()]
    if configured:
        return [k.encode() for k in configured]
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"cdp-destination-secrets", info=b"fernet"
    ).derive(settings.SECRET_KEY.encode())
    return [base64.urlsafe_b64encode(derived)]


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in _keys()])


def encrypt(values: dict[str, str]) -> str:
    if not values:
        return ""
    return _fernet().encrypt(orjson.dumps(values)).decode()


def decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        data: Any = orjson.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretsUnreadable(
            "the destination's secrets cannot be decrypted: CDP_SECRETS_KEY (or SECRET_KEY) "
            "changed without keeping the old key"
        ) from exc
    return {str(k): str(v) for k, v in data.items()}

"""Secrets the platform issues: write keys (public in web pages, stored as they are), API tokens
and server keys (stored as a SHA-256 digest and a short display prefix: shown once, at
creation, never again)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.db import models

PREFIX_LENGTH = 10  # "tok_Raj8Su": enough to tell keys apart in a list


def new_key(prefix: str, nbytes: int = 24) -> str:
    """A random key with a readable prefix (wk_ write key, tok_ API token, sk_ server key)."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def digest_of(secret: str) -> str:
    """What is stored and looked up for a hashed secret. The secrets are 24 random bytes, so
    a plain SHA-256 (no salt, no stretching) cannot be reversed and allows an index look-up."""
    return hashlib.sha256(secret.encode("utf-8", errors="surrogatepass")).hexdigest()


class HashedSecret(models.Model):
    """A secret kept as its digest and display prefix. `issue()` makes one and leaves the
    secret on the instance (`.secret`) for the one answer that shows it."""

    KEY_PREFIX = "key"

    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=PREFIX_LENGTH)

    secret: str | None = None  # only on the instance that issued it

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.digest:
            self.issue()
        super().save(*args, **kwargs)

    def issue(self) -> str:
        secret = new_key(self.KEY_PREFIX)
        self.digest = digest_of(secret)
        self.prefix = secret[:PREFIX_LENGTH]
        self.secret = secret
        return secret

    @classmethod
    def matching(cls, secret: str) -> models.QuerySet[Any]:
        return cls._default_manager.filter(digest=digest_of(secret))

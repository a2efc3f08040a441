import secrets


def new_key(prefix: str, nbytes: int = 24) -> str:
    """A random key with a readable prefix (wk_ write key, tok_ API token, sk_ server key)."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"

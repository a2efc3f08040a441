"""Destination kinds, one module each, behind one interface (connectors.base.Connector)."""

from __future__ import annotations

from activation.connectors.base import Connector

_KINDS: dict[str, Connector] = {}


def register(connector: Connector) -> None:
    _KINDS[connector.kind] = connector


def get(kind: str) -> Connector:
    _load()
    try:
        return _KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown destination kind {kind!r}") from None


def kinds() -> list[Connector]:
    _load()
    return list(_KINDS.values())


MODULES = ("webhook", "files", "amqp", "postgres", "adplatforms")
_loaded = False


def _load() -> None:
    """Import every kind's module once (each registers itself when imported)."""
    global _loaded
    if _loaded:
        return
    import importlib

    for module in MODULES:
        importlib.import_module(f"activation.connectors.{module}")
    _loaded = True

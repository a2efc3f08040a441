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


def _load() -> None:
    if _KINDS:
        return
    import importlib

    for module in ("webhook", "files", "amqp", "postgres", "adplatforms"):
        try:
            importlib.import_module(f"activation.connectors.{module}")
        except ModuleNotFoundError as exc:  # a kind not built yet
            if exc.name != f"activation.connectors.{module}":
                raise

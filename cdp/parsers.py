"""The one JSON parser of the management API: bodies are read by orjson, then checked once for
what no field may hold — nesting deeper than MAX_DEPTH (deep trees would exhaust the stack of
the validators that walk them) and the NUL character (Postgres cannot store it) — answering
400 with the path of the offending value, before any view or serializer sees the body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from cdp.errors import NON_FIELD, ValidationFailed

MAX_DEPTH = 64
NUL_MESSAGE = "contains a NUL character (\\x00), which is never valid"


def _join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def check_body(data: Any) -> None:
    """ValidationFailed naming the first value nested too deep or holding a NUL."""
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise ValidationFailed.at(path or NON_FIELD, NUL_MESSAGE)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise ValidationFailed.at(path or NON_FIELD, f"nested deeper than {MAX_DEPTH} levels")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                raise ValidationFailed.at(_join(path, key.replace("\x00", "\\x00")), NUL_MESSAGE)
            stack.append((_join(path, key), item, depth + 1))


class JSONParser(BaseParser):
    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        check_body(data)
        return data

"""Dotted paths into JSON objects — one syntax for every place a user names a nested value:
segment rules (traits and event properties), computed traits, sync field mappings and the
observed schema.

`address.city` is the key `city` inside the object `address`; a numeric step also indexes an
array (`items.0.price`, `tags.-1`), as Postgres `#>` does. A key that itself holds a dot or
a backslash is written with a backslash before it: `utm\\.source` is the one key
`utm.source`, `a\\\\b` the key `a\\b`. A backslash before any other character is kept as it
is, so names written before this syntax keep their meaning unless they hold a dot."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

_INDEX = re.compile(r"-?[0-9]+")


class PathError(ValueError):
    """A path with an empty step (`a..b`, `.a`, `a.`)."""


def split_path(text: str) -> tuple[str, ...]:
    """The keys of a dotted path, escapes resolved."""
    keys: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in ".\\":
            current.append(text[i + 1])
            i += 2
            continue
        if char == ".":
            keys.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    keys.append("".join(current))
    if any(key == "" for key in keys):
        raise PathError(f"{text!r} has an empty step; write a dotted path such as address.city")
    return tuple(keys)


def escape_key(key: str) -> str:
    """One key as a step of a dotted path."""
    return key.replace("\\", "\\\\").replace(".", "\\.")


def join_path(keys: Iterable[str]) -> str:
    """The dotted path of these keys (the inverse of split_path)."""
    return ".".join(escape_key(key) for key in keys)


@lru_cache(maxsize=4096)
def path_keys(text: str) -> tuple[str, ...]:
    """split_path, remembered: for paths read once per row (sync field mappings)."""
    return split_path(text)


def value_at(obj: Any, keys: Sequence[str]) -> Any:
    """The value at a path of keys (array elements by index, negative from the end, as
    Postgres `#>` does), or None when any step is missing or the value is JSON null."""
    current = obj
    for step in keys:
        if isinstance(current, dict) and step in current:
            current = current[step]
        elif isinstance(current, list) and _INDEX.fullmatch(step):
            index = int(step)
            if not -len(current) <= index < len(current):
                return None
            current = current[index]
        else:
            return None
    return current

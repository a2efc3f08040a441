"""An audit entry's detail as lines a person reads ("two person approval: off → on",
"counts: events 12, profiles 1") instead of JSON; the JSON stays one click away on the page.

Changes are written as `before → after`, whether the entry keeps them as {"before", "after"}
(or {"from", "to"}) around every field or per field; moments read as UTC dates; short lists
and small objects fit on their line, larger ones are cut with a count of what is left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

MAX_ITEMS = 8  # list items / object fields written out on one line
MAX_TEXT = 300  # characters of one value (the raw JSON has it whole)
CHANGE_KEYS = (("before", "after"), ("from", "to"))


@dataclass(frozen=True, slots=True)
class DetailLine:
    label: str
    text: str


def _label(key: str) -> str:
    return key.replace("_", " ")


def _moment(text: str) -> str | None:
    if len(text) < 16 or text[4:5] != "-" or "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def value_text(value: Any) -> str:
    """One value, readable: yes/no, none, UTC dates, `a, b, c`, `key value, key value`."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"
    if isinstance(value, str):
        return _cut(_moment(value) or value) if value else "(empty)"
    if isinstance(value, list):
        if not value:
            return "none"
        shown = ", ".join(value_text(v) for v in value[:MAX_ITEMS])
        more = len(value) - MAX_ITEMS
        return _cut(shown + (f" and {more:,} more" if more > 0 else ""))
    if isinstance(value, dict):
        if not value:
            return "none"
        change = _change(value)
        if change is not None:
            return change
        items = sorted(value.items())  # by name: the database has its own order
        shown = ", ".join(f"{_label(str(k))} {value_text(v)}" for k, v in items[:MAX_ITEMS])
        more = len(items) - MAX_ITEMS
        return _cut(shown + (f" and {more:,} more" if more > 0 else ""))
    return _cut(str(value))


def _change(value: dict[str, Any]) -> str | None:
    """`old → new` for a {"before": old, "after": new} (or from/to) pair of scalars."""
    for old, new in CHANGE_KEYS:
        if set(value) == {old, new} and not any(
            isinstance(value[k], dict | list) for k in (old, new)
        ):
            return f"{value_text(value[old])} → {value_text(value[new])}"
    return None


def _field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[DetailLine]:
    """{"before": {...}, "after": {...}} around several fields: one line per field that
    changed (or every field, when none did, so the line says what was kept)."""
    keys = sorted({*before, *after})
    changed = [k for k in keys if before.get(k) != after.get(k)] or keys
    return [
        DetailLine(_label(k), f"{value_text(before.get(k))} → {value_text(after.get(k))}")
        for k in changed
    ]


def detail_lines(detail: dict[str, Any] | None) -> list[DetailLine]:
    """The entry's detail as label/text lines: the changes first, then the other fields by
    name (the database keeps JSON objects in an order of its own)."""
    detail = detail or {}
    lines: list[DetailLine] = []
    before, after = detail.get("before"), detail.get("after")
    if isinstance(before, dict) and isinstance(after, dict):
        lines += _field_changes(before, after)
        detail = {k: v for k, v in detail.items() if k not in ("before", "after")}
    elif "before" in detail and "after" in detail:
        lines.append(DetailLine("change", value_text({"before": before, "after": after})))
        detail = {k: v for k, v in detail.items() if k not in ("before", "after")}
    lines += [DetailLine(_label(str(k)), value_text(v)) for k, v in sorted(detail.items())]
    return lines


def detail_json(detail: dict[str, Any] | None) -> str:
    """The detail as stored, indented, for the raw view."""
    return orjson.dumps(detail or {}, option=orjson.OPT_INDENT_2, default=str).decode()

"""Numbers from URLs, query strings and forms: ASCII digits only (`str.isdigit` also accepts
"¹" and "٣", which `int()` refuses or reads), within the database's integer columns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cdp.errors import ValidationFailed

ID_REGEX = r"[0-9]{1,18}"  # a bigint id in a URL path: anything else is a 404, never a 500
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1  # PositiveIntegerField / IntegerField columns


def is_id(value: Any) -> bool:
    """Whether `value` is the text (or int) of a row id."""
    text = str(value)
    return text.isascii() and text.isdigit() and 0 < len(text) <= 18


def int_param(value: Any, name: str, *, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """A whole number within [minimum, maximum], or a 400 naming the parameter."""
    text = str(value).strip()
    if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 20):
        raise ValidationFailed.at(name, f"expected a whole number, got {str(value)[:40]!r}")
    number = int(text)
    if not minimum <= number <= maximum:
        raise ValidationFailed.at(name, f"expected {minimum:,} to {maximum:,}, got {number:,}")
    return number


def choice_param(value: Any, name: str, choices: Iterable[str]) -> str:
    """One of `choices`, or "" when absent; anything else (an empty value too) is a 400
    naming the parameter and the choices (a filter silently ignored would answer another
    question)."""
    if value is None:
        return ""
    allowed = list(choices)
    if value not in allowed:
        raise ValidationFailed.at(
            name, f"expected one of {', '.join(allowed)}, got {str(value)[:40]!r}"
        )
    return str(value)

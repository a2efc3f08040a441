"""The texts of moments, numbers and amounts, shared by the templates' filters
(`cdp/templatetags/present.py`) and any Python that writes them into a page or a message.
`cdp/static/cdp/lib/format.js` writes the same texts in the browser."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# symbol before the amount; other currencies are written after it ("1,234.50 CHF")
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CNY": "¥"}
_NO_CENTS = {"JPY", "KRW", "HUF", "ISK", "CLP"}
_UNITS = (
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("week", 7 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
)


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def moment_text(value: datetime, *, seconds: bool = False) -> str:
    """ "4 Dec 2026, 21:03 UTC" — the browser rewrites it in the reader's zone."""
    moment = utc(value)
    clock = f"{moment:%H:%M:%S}" if seconds else f"{moment:%H:%M}"
    return f"{moment.day} {moment:%b %Y}, {clock} UTC"


def relative_text(value: datetime, now: datetime) -> str:
    """ "just now", "5 minutes ago", "in 2 days" (the largest whole unit)."""
    delta = (utc(now) - utc(value)).total_seconds()
    span = abs(delta)
    if span < 45:
        return "just now"
    for unit, size in _UNITS:
        if span >= size:
            n = int(span // size)
            text = f"{n} {unit}{'s' if n != 1 else ''}"
            return f"{text} ago" if delta > 0 else f"in {text}"
    return "just now"


def number_text(value: Any, digits: int = 0) -> str:
    if value is None or value == "":
        return "—"
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    return f"{number:,.{int(digits)}f}"


def duration_text(milliseconds: Any) -> str:
    """A duration given in milliseconds: "840 ms", "2.4 s", "3 min 5 s"."""
    if milliseconds is None or milliseconds == "":
        return "—"
    ms = float(milliseconds)
    if ms < 1000:
        return f"{number_text(ms)} ms"
    if ms < 60_000:
        return f"{number_text(ms / 1000, 1)} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{number_text(minutes)} min {seconds} s" if seconds else f"{number_text(minutes)} min"


def money_text(value: Any, currency: str = "USD") -> str:
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    code = currency.upper()
    text = f"{abs(amount):,.{0 if code in _NO_CENTS else 2}f}"
    sign = "−" if amount < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"

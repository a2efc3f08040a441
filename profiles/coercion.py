"""How a value found in traits or event properties compares with a value a rule was given —
stated once, where the data lives, in a Python form (the segment evaluator's and the observed
schema's) and an SQL form (the segment compiler's), which the rule oracle holds equal.

- **Number operators** (gt, gte, lt, lte, between) read a JSON number, or a *numeric string*:
  ASCII spaces, tabs and line breaks trimmed, then an optional sign and decimal digits with an
  optional `.` fraction — `"60"`, `" 60 "`, `"-2.5"`, `".5"`, `"5."` — at most 40 digits on
  either side of the point. No exponent, no thousands separator, no decimal comma, no
  `NaN`/`Infinity`: `"1e3"`, `"1,5"`, `"1 000"` are text, not numbers.
- **Equality with a number** (eq, neq, in and not_in items that are numbers) compares by
  value, so `60` equals `60`, `60.0`, `"60"` and `" 60.00 "`, but never `true` or `"sixty"`.
- **Equality with a string** compares text exactly (case and spaces count): the string `"60"`
  equals only the string `"60"` — a postal code `"01234"` is not the number 1234. The builder
  sends a number for a path seen with numbers (or with mixed types) and a string for a path
  seen only with text.
- Booleans equal only booleans. String operators need a JSON string (`contains 6` does not
  read the number 60). Date operators read ISO 8601 strings (see compile.ISO_DATE_PATTERN).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

# the same pattern in Python (fullmatch) and Postgres (~, anchored); only ASCII digits
_NUMBER = r"[+-]?([0-9]{1,40}(\.[0-9]{0,40})?|\.[0-9]{1,40})"
_TRIM = " \t\r\n"
NUMERIC_STRING = re.compile(rf"[{_TRIM}]*{_NUMBER}[{_TRIM}]*")
NUMERIC_STRING_SQL = rf"^[ \t\r\n]*{_NUMBER}[ \t\r\n]*$"


def json_number(value: Any) -> Decimal | None:
    """A JSON number (never a boolean) or a numeric column value, as jsonb keeps it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # jsonb keeps the decimal text, not the binary float
    return None


def numeric_value(value: Any) -> Decimal | None:
    """The number a number operator reads from a found value (None: not a number)."""
    if isinstance(value, str):
        if NUMERIC_STRING.fullmatch(value) is None:
            return None
        return Decimal(value.strip(_TRIM))
    return json_number(value)


def numeric_sql(v: str, param: Callable[[Any], str]) -> str:
    """The SQL form of numeric_value for a jsonb expression `v` (NULL: not a number).
    The cast sits in a THEN, so Postgres never tries it on text the pattern refused."""
    text = f"({v} #>> '{{}}')"
    return (
        f"(CASE jsonb_typeof({v}) WHEN 'number' THEN ({v})::numeric "
        f"WHEN 'string' THEN CASE WHEN {text} ~ {param(NUMERIC_STRING_SQL)} "
        f"THEN btrim({text}, {param(_TRIM)})::numeric END END)"
    )


def is_numeric_string(value: Any) -> bool:
    """A string that number operators read as a number."""
    return isinstance(value, str) and NUMERIC_STRING.fullmatch(value) is not None


def is_number(value: Any) -> bool:
    """Whether a rule's value compares as a number (a JSON number, not a boolean)."""
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)

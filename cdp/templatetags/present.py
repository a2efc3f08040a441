"""One way to show moments, numbers and money on every page (`{% load present %}`).

Moments are rendered in UTC with the zone named, inside a `<time>` element whose title is the
exact UTC time; `cdp/lib/format.js` then rewrites them in the reader's own zone (named too), so
a page reads the same whether its text came from the server or from a script:

    {{ segment.evaluated_at|when }}     4 Dec 2026, 21:03 UTC   (then local: 22:03 CET)
    {{ profile.last_seen|ago }}         3 hours ago             (exact time on hover)
    {{ profile.first_seen|day }}        4 Dec 2026
    {{ count|num }}                     12,345
    {% money profile.revenue %}         $1,234.50   (the workspace's currency setting)
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from cdp.present import (
    duration_text,
    moment_text,
    money_text,
    number_text,
    relative_text,
    utc,
)

register = template.Library()

_NOTHING = format_html('<span class="muted">{}</span>', "—")


def _time(value: datetime, text: str, mode: str) -> SafeString:
    moment = utc(value)
    return format_html(
        '<time datetime="{}" title="{} UTC" data-when="{}">{}</time>',
        moment.isoformat().replace("+00:00", "Z"),
        moment.strftime("%Y-%m-%d %H:%M:%S"),
        mode,
        text,
    )


@register.filter
def when(value: datetime | None, arg: str = "") -> SafeString:
    """A moment: "4 Dec 2026, 21:03 UTC" (`|when:"seconds"` adds the seconds)."""
    if not isinstance(value, datetime):
        return _NOTHING
    seconds = arg == "seconds"
    return _time(value, moment_text(value, seconds=seconds), "seconds" if seconds else "abs")


@register.filter
def ago(value: datetime | None) -> SafeString:
    """A moment relative to now ("3 hours ago"), the exact time in its title."""
    if not isinstance(value, datetime):
        return _NOTHING
    return _time(value, relative_text(value, timezone.now()), "ago")


@register.filter
def day(value: datetime | date | None) -> SafeString:
    """A calendar day: "4 Dec 2026" (a moment's day in UTC, its exact time in the title)."""
    if isinstance(value, datetime):
        return _time(value, f"{utc(value).day} {utc(value):%b %Y}", "day")
    if isinstance(value, date):
        return format_html(
            '<time datetime="{}">{} {}</time>',
            value.isoformat(),
            value.day,
            value.strftime("%b %Y"),
        )
    return _NOTHING


@register.filter
def num(value: Any, digits: int = 0) -> str:
    """Grouped digits: 12345 -> "12,345"; `|num:1` keeps one decimal."""
    return number_text(value, digits)


@register.filter
def millis(value: Any) -> str:
    """A duration in milliseconds: 840 -> "840 ms", 2400 -> "2.4 s", 185000 -> "3 min 5 s"."""
    return duration_text(value)


@register.simple_tag(takes_context=True)
def money(context: template.Context, value: Decimal | float | int | None) -> str:
    """An amount in the workspace's currency (setting `currency`, default USD)."""
    workspace = context.get("current_workspace")
    currency = ((workspace.settings or {}).get("currency") if workspace else None) or "USD"
    return money_text(value, str(currency))


@register.filter
def pct(value: Any, digits: int = 0) -> str:
    """A share as a percentage: 0.1423 -> "14 %" (`|pct:1` -> "14.2 %")."""
    if value is None or value == "":
        return "—"
    return f"{number_text(float(value) * 100, digits)} %"


@register.filter
def signed_pct(value: Any) -> str:
    """A change as a signed percentage: 0.12 -> "+12 %", -0.05 -> "−5 %"."""
    if value is None or value == "":
        return ""
    change = float(value) * 100
    sign = "+" if change > 0 else ("−" if change < 0 else "±")
    return f"{sign}{number_text(abs(change), 0)} %"

"""One way to show moments, numbers and money: the texts, the template filters and the
workspace's currency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.template import Context, Template

from cdp.models import AuditLog, Role, Workspace
from cdp.present import duration_text, moment_text, money_text, number_text, relative_text
from tests.fixtures import Tenant

AT = datetime(2026, 12, 4, 21, 3, 27, tzinfo=UTC)


def test_moments_name_their_zone() -> None:
    assert moment_text(AT) == "4 Dec 2026, 21:03 UTC"
    assert moment_text(AT, seconds=True) == "4 Dec 2026, 21:03:27 UTC"
    # another zone is converted, never shown as if it were UTC
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    assert moment_text(paris) == "4 Dec 2026, 21:03 UTC"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=10), "just now"),
        (timedelta(minutes=5), "5 minutes ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(days=2, hours=3), "2 days ago"),
        (timedelta(days=-3), "in 3 days"),
        (timedelta(days=400), "1 year ago"),
    ],
)
def test_relative_times(delta: timedelta, text: str) -> None:
    assert relative_text(AT - delta, AT) == text


def test_numbers_and_money() -> None:
    assert number_text(1234567) == "1,234,567"
    assert number_text("12.345", 1) == "12.3"
    assert number_text(None) == "—" and number_text("n/a") == "n/a"
    assert money_text(Decimal("4378.55")) == "$4,378.55"
    assert money_text(-5, "EUR") == "−€5.00"
    assert money_text(1500, "JPY") == "¥1,500"
    assert money_text(12.5, "CHF") == "12.50 CHF"


def _render(text: str, **context: Any) -> str:
    return Template("{% load present %}" + text).render(Context(context))


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "—"),
        (0, "0 ms"),
        (840.4, "840 ms"),
        (2400, "2.4 s"),
        (185_000, "3 min 5 s"),
        (3_600_000, "60 min"),
    ],
)
def test_durations(ms: float | None, text: str) -> None:
    assert duration_text(ms) == text
    assert Template("{% load present %}{{ v|millis }}").render(Context({"v": ms})) == text


def test_filters_write_a_time_element_with_the_exact_utc_time() -> None:
    html = _render("{{ at|when }}", at=AT)
    assert html == (
        '<time datetime="2026-12-04T21:03:27Z" title="2026-12-04 21:03:27 UTC" '
        'data-when="abs">4 Dec 2026, 21:03 UTC</time>'
    )
    assert 'data-when="ago"' in _render("{{ at|ago }}", at=AT)
    assert ">4 Dec 2026</time>" in _render("{{ at|day }}", at=AT)
    assert _render("{{ at|when }}", at=None) == '<span class="muted">—</span>'
    assert _render(
        "{{ n|num }} · {{ s|pct }} · {{ c|signed_pct }}", n=12345, s=0.1423, c=-0.05
    ) == ("12,345 · 14 % · −5 %")
    # markup in a value never becomes markup
    assert "<b>" not in _render("{{ n|num }}", n="<b>x</b>")


@pytest.mark.django_db
def test_money_uses_the_workspace_currency() -> None:
    workspace = Workspace.objects.create(name="W", settings={"currency": "EUR"})
    assert _render("{% money v %}", v=Decimal("9.5"), current_workspace=workspace) == "€9.50"
    assert _render("{% money v %}", v=Decimal("9.5")) == "$9.50"


@pytest.mark.django_db
def test_an_owner_sets_the_currency_on_the_settings_page(tenant_a: Tenant) -> None:
    page = tenant_a.session().get("/settings/").content.decode()
    assert 'id="workspace-settings"' in page
    assert (
        'id="workspace-settings"'
        not in tenant_a.session(Role.ADMIN).get("/settings/").content.decode()
    )
    tenant_a.session().post("/settings/", {"action": "currency", "currency": "gbp"})
    tenant_a.workspace.refresh_from_db()
    assert tenant_a.workspace.settings["currency"] == "GBP"
    row = AuditLog.objects.get(action="workspace.currency")
    assert row.detail == {"from": "USD", "to": "GBP"}
    assert 'data-currency="GBP"' in tenant_a.session().get("/").content.decode()
    bad = tenant_a.session().post(
        "/settings/", {"action": "currency", "currency": "XXX"}, follow=True
    )
    assert "expected one of" in bad.content.decode()
    tenant_a.session(Role.ADMIN).post("/settings/", {"action": "currency", "currency": "EUR"})
    tenant_a.workspace.refresh_from_db()
    assert tenant_a.workspace.settings["currency"] == "GBP"  # an admin may not

"""The System page's registry (cdp/system.py): sections and dead-letter rows in order, a
section whose query fails shown as unavailable while the others still are, the components
those of cdp.health. The page itself, with the apps' parts: tests/test_system_page.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from django.db import DatabaseError

from cdp import system
from cdp.models import Workspace


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(system, "_SECTIONS", {})
    monkeypatch.setattr(system, "_DEAD_LETTERS", {})
    yield


def _broken(workspace: Workspace) -> dict[str, Any]:
    raise DatabaseError("canceling statement due to statement timeout")


@pytest.mark.django_db
def test_sections_in_order_and_a_failing_one_is_unavailable(registry: None) -> None:
    workspace = Workspace.objects.create(name="W")
    system.register_section(
        key="b", title="B", order=20, template="b.html", context_fn=lambda w: {"id": w.pk}
    )
    system.register_section(key="a", title="A", order=10, template="a.html", context_fn=_broken)
    sections = system.page_sections(None, workspace)
    assert [s["key"] for s in sections] == ["a", "b"]
    assert sections[0]["error"].startswith("DatabaseError: canceling statement")
    assert sections[1]["context"] == {"id": workspace.pk}
    with pytest.raises(KeyError):
        system.register_section(
            key="c", title="C", order=1, template="c.html", context_fn=_broken, capability="nope"
        )


@pytest.mark.django_db
def test_dead_letter_rows_count_since_a_day_and_link(registry: None) -> None:
    workspace = Workspace.objects.create(name="W")
    asked: list[datetime] = []

    def count(w: Workspace, since: datetime) -> int:
        asked.append(since)
        return 3

    system.register_dead_letters(
        key="x", label="X", order=1, count_fn=count, url_name="ui-settings", query="status=dead"
    )
    rows = system.dead_letters(workspace)["rows"]
    assert rows == [{"key": "x", "label": "X", "count": 3, "href": "/settings/?status=dead"}]
    assert len(asked) == 1


@pytest.mark.django_db
def test_components_are_the_readiness_checks() -> None:
    keys = [c["key"] for c in system.components()]
    assert keys == ["database", "migrations", "broker", "worker", "beat"]
    assert system.database_megabytes() > 0

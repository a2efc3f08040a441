"""The sidebar and the Settings page are made of what the apps register; each role sees the
entries its capabilities allow, and / opens the overview (the landing page of every role)."""

from __future__ import annotations

from typing import Any

import pytest

from cdp import navigation
from cdp.models import Role

# (role, labels in the sidebar)
ACTIVATION = ["Destinations", "Syncs", "Deliveries", "Experiments", "Decisions"]
SIDEBARS = [
    (
        Role.OWNER,
        [
            "Overview",
            "Sources",
            "Profiles",
            "Segments",
            "Models",
            *ACTIVATION,
            "Event debugger",
            "Schema",
            "Privacy",
            "Settings",
        ],
    ),
    (
        Role.MARKETER,
        [
            "Overview",
            "Sources",
            "Profiles",
            "Segments",
            "Models",
            *ACTIVATION,
            "Event debugger",
            "Schema",
            "Settings",
        ],
    ),
    (
        Role.ANALYST,
        [
            "Overview",
            "Sources",
            "Profiles",
            "Segments",
            "Models",
            *ACTIVATION,
            "Event debugger",
            "Schema",
            "Settings",
        ],
    ),
    (
        Role.PRIVACY_OFFICER,
        ["Overview", "Sources", "Profiles", "Event debugger", "Privacy", "Settings"],
    ),
]


@pytest.mark.parametrize(("role", "labels"), SIDEBARS)
def test_each_role_sees_the_entries_it_may_open(
    tenant_a: Any, role: str, labels: list[str]
) -> None:
    entries = navigation.visible_entries(tenant_a.users[role], tenant_a.workspace)
    assert [e.label for e in entries] == labels
    html = tenant_a.session(role).get("/settings/").content.decode()
    sidebar = html[html.index('<nav aria-label="Main">') : html.index("</nav>")]
    assert [label for label in labels if f">{label}</a>" in sidebar] == labels


def test_home_is_the_overview_and_switching_workspace_lands_there(tenant_a: Any) -> None:
    home = tenant_a.session(Role.ANALYST).get("/")
    assert home.status_code == 200 and b"<h1>Overview</h1>" in home.content
    switched = tenant_a.session(Role.OWNER).post(
        "/workspace/switch/", {"workspace": tenant_a.workspace.pk}
    )
    assert switched["Location"] == "/"


def test_settings_links_follow_the_capabilities(tenant_a: Any) -> None:
    analyst = tenant_a.session(Role.ANALYST).get("/settings/").content.decode()
    officer = tenant_a.session(Role.PRIVACY_OFFICER).get("/settings/").content.decode()
    assert 'id="identity-settings"' in analyst and "/settings/identity/" in analyst
    assert 'id="identity-settings"' not in officer


def test_an_entry_with_an_unknown_capability_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown capability"):
        navigation.register(label="X", url_name="ui-x", capability="nothing.here", order=1)
    assert "ui-x" not in [e.url_name for e in navigation.entries()]

"""The sidebar and the Settings page are made of what the apps register; each role sees the
entries its capabilities allow, and / opens the first of them."""

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
    (Role.PRIVACY_OFFICER, ["Sources", "Profiles", "Event debugger", "Privacy", "Settings"]),
]


@pytest.mark.parametrize(("role", "labels"), SIDEBARS)
def test_each_role_sees_the_entries_it_may_open(
    tenant_a: Any, role: str, labels: list[str]
) -> None:
    entries = navigation.visible_entries(tenant_a.users[role], tenant_a.workspace)
    assert [e.label for e in entries] == labels
    html = tenant_a.session(role).get("/settings/").content.decode()
    sidebar = html[html.index("<nav>") : html.index("</nav>")]
    assert [label for label in labels if f">{label}</a>" in sidebar] == labels


def test_home_opens_the_first_page_the_role_may_see(tenant_a: Any) -> None:
    assert tenant_a.session(Role.OWNER).get("/")["Location"] == "/sources/"
    switched = tenant_a.session(Role.OWNER).post(
        "/workspace/switch/", {"workspace": tenant_a.workspace.pk}
    )
    assert switched["Location"] == "/sources/"


def test_settings_links_follow_the_capabilities(tenant_a: Any) -> None:
    analyst = tenant_a.session(Role.ANALYST).get("/settings/").content.decode()
    officer = tenant_a.session(Role.PRIVACY_OFFICER).get("/settings/").content.decode()
    assert 'id="identity-settings"' in analyst and "/settings/identity/" in analyst
    assert 'id="identity-settings"' not in officer


def test_an_entry_with_an_unknown_capability_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown capability"):
        navigation.register(label="X", url_name="ui-x", capability="nothing.here", order=1)
    assert "ui-x" not in [e.url_name for e in navigation.entries()]

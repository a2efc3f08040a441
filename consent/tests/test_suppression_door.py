"""The suppression list at the collector's door (consent's door filter)."""

from __future__ import annotations

from typing import Any

from django.test import Client

from consent.models import SuppressedIdentifier, SuppressionDropCount
from consent.suppression import suppression_add
from profiles.models import Event
from profiles.tests.test_collector_errors import batch, track
from tests.fixtures import Tenant, post_collector


def test_suppressed_identifiers_are_dropped_at_the_door_and_counted(
    tenant_a: Tenant, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        suppression_add(
            workspace=tenant_a.workspace, identifier_type="email", normalized_value="gone@x.io"
        )
        suppression_add(
            workspace=tenant_a.workspace, identifier_type="user_id", normalized_value="u-gone"
        )
    events = [
        track(userId="u-gone"),
        {
            "type": "identify",
            "anonymousId": "a-9",
            "traits": {"email": " Gone@X.io "},
            "messageId": "m-ident",
        },
        track(userId="u-stays"),
    ]
    response = post_collector(client, "/v1/batch", batch(*events), write_key=tenant_a.write_key)
    assert response.status_code == 200
    assert response.json()["accepted"] == 3  # the caller learns nothing about suppression
    assert list(Event.objects.values_list("user_id", flat=True)) == ["u-stays"]
    assert SuppressionDropCount.objects.get().dropped == 2
    # the list holds no readable identifier
    for row in SuppressedIdentifier.objects.all():
        assert "gone" not in row.digest

"""A custom computed trait that keeps an object property's value (the last product bought)
is read by dotted path like any nested trait: the builder offers its fields as the events
sent them, and a rule on `last_product.price` compares the price sent as text or number."""

from __future__ import annotations

from typing import Any

from django.test import Client

from profiles.computed import services as computed
from profiles.models import Profile
from segments.selectors import builder_suggestions
from segments.services import segment_preview
from tests.fixtures import Tenant, send_events


def order(user: str, product: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "properties": {"product": product},
    }


def test_a_computed_object_is_read_by_its_fields(tenant_a: Tenant) -> None:
    send_events(
        Client(),
        tenant_a,
        order("ann", {"name": "Hat", "price": 25}),
        order("ann", {"name": "Shoe", "price": "60"}),
        order("bob", {"name": "Sock", "price": 4.5}),
        order("cy", {"name": "Coat", "price": "n/a"}),
    )
    trait = computed.computed_trait_create(
        workspace=tenant_a.workspace,
        actor=None,
        data={
            "key": "last_product",
            "name": "Last product",
            "aggregation": "last",
            "event": "Order Completed",
            "property": "product",
        },
    )
    computed.computed_trait_refresh(trait=trait)
    values = {p.computed.get("last_product", {}).get("name") for p in Profile.objects.all()}
    assert values == {"Shoe", "Sock", "Coat"}

    suggestions = builder_suggestions(workspace=tenant_a.workspace, exclude_segment=None)
    traits = {t["name"]: t for t in suggestions["traits"]}
    assert traits["last_product"]["label"] == "Last product (custom)"
    assert traits["last_product.name"]["type"] == "string"
    price = traits["last_product.price"]
    assert price["type"] == "any" and price["label"] == "Last product (custom) field"
    assert price["mixed"] == "number 50 %, text 50 %"
    assert (price["text_values"], price["text_numbers"]) == (2, 1)  # "60" yes, "n/a" no

    def members(rule: dict[str, Any]) -> int:
        return segment_preview(workspace=tenant_a.workspace, rule=rule, sample=0).count

    assert members({"trait": "last_product.price", "op": "gte", "value": 10}) == 1  # "60"
    assert members({"trait": "last_product.price", "op": "lt", "value": 10}) == 1  # 4.5
    assert members({"trait": "last_product.name", "op": "in", "value": ["Shoe", "Coat"]}) == 2
    assert members({"trait": "last_product.price", "op": "not_exists"}) == 0

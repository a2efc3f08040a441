"""The segment builder's rule language (schema.builder_language(), in its page config) agrees
with the validator: the operators offered for a value type are the ones validate.py accepts
for a trait of that type, and the condition kinds and count operators are the validator's."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.errors import ValidationFailed
from segments.rules import nodes as n
from segments.rules.schema import builder_language
from segments.rules.validate import CONDITION_KEYS, RuleContext, parse_rule

LANGUAGE = builder_language()
CONTEXT = RuleContext(
    columns={"orders": ("order_count", "number"), "last_seen": ("last_seen", "datetime")},
    consent_purposes={"marketing_email"},
)
# a trait of each type: numbers and dates kept as Profile columns, which the validator types;
# traits in Profile.traits JSON, which it does not (any operator, the value decides)
TYPED_TRAITS = {"number": "orders", "datetime": "last_seen", "any": "plan"}
JSON_TRAIT = "plan"
# a value each operator accepts, whatever the trait
VALUES: dict[str, Any] = {
    **dict.fromkeys((*n.SCALAR_OPS, *n.NUMBER_OPS), 3),
    **dict.fromkeys(n.RANGE_OPS, [1, 5]),
    **dict.fromkeys(n.SET_OPS, [1, 2]),
    **dict.fromkeys(n.STRING_OPS, "pro"),
    **dict.fromkeys(("before", "after"), "2026-01-31"),
    "within_last": {"days": 30},
}


def accepts(rule: dict[str, Any]) -> bool:
    try:
        parse_rule(rule, CONTEXT)
    except ValidationFailed:
        return False
    return True


def accepted_for(trait: str) -> set[str]:
    """The operators the validator takes on this trait."""
    return {
        op
        for op in n.ALL_OPS
        if accepts({"trait": trait, "op": op, **({"value": VALUES[op]} if op in VALUES else {})})
    }


def test_every_operator_has_a_value_to_test_it_with() -> None:
    assert set(VALUES) | set(n.PRESENCE_OPS) == set(n.ALL_OPS)


@pytest.mark.parametrize("value_type", sorted(TYPED_TRAITS))
def test_the_builder_offers_what_the_validator_accepts_for_a_typed_trait(value_type: str) -> None:
    offered = LANGUAGE["ops_by_type"][value_type]
    assert len(offered) == len(set(offered))
    assert set(offered) == accepted_for(TYPED_TRAITS[value_type])


@pytest.mark.parametrize("value_type", ["string", "boolean"])
def test_a_json_trait_seen_as_one_type_is_offered_a_part_of_what_is_valid(value_type: str) -> None:
    """The validator does not know the type of a JSON trait: it takes every operator there (the
    builder's "any"). For one observed as a string or a boolean the builder offers fewer: each
    of them valid, and the type's own operators among them."""
    offered = set(LANGUAGE["ops_by_type"][value_type])
    assert offered <= accepted_for(JSON_TRAIT) == set(n.ALL_OPS)
    assert set(n.SCALAR_OPS) | set(n.PRESENCE_OPS) <= offered
    if value_type == "string":
        assert set(n.STRING_OPS) | set(n.DATE_OPS) <= offered
        assert not offered & (set(n.NUMBER_OPS) | set(n.RANGE_OPS))  # need a JSON number


def test_the_types_are_those_the_pages_give_traits_and_properties() -> None:
    assert set(LANGUAGE["ops_by_type"]) == {"string", "number", "boolean", "datetime", "any"}


def test_count_operators_are_the_validators() -> None:
    offered = LANGUAGE["count_ops"]
    assert sorted(offered) == sorted(n.COUNT_OPS)
    assert offered[0] == "gte"  # "performed at least once" is the default
    event = {"event": "Order Completed"}
    assert all(accepts({**event, "count": {"op": op, "value": 1}}) for op in offered)
    assert not accepts({**event, "count": {"op": "between", "value": 1}})


def test_every_operator_has_a_label_and_one_family() -> None:
    assert list(LANGUAGE["op_labels"]) == list(n.ALL_OPS)
    assert all(LANGUAGE["op_labels"].values())
    families = [op for ops in LANGUAGE["families"].values() for op in ops]
    assert sorted(families) == sorted(n.ALL_OPS)


def test_the_condition_kinds_are_the_validators() -> None:
    kinds = [k["key"] for k in LANGUAGE["kinds"]]
    assert sorted(kinds) == sorted(CONDITION_KEYS)
    assert all(k["label"] for k in LANGUAGE["kinds"])

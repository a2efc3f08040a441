"""The decision API's evaluator against the SQL segment compiler: random profiles (traits,
computed traits, columns, consents, segment memberships) are stored, their decision records
built by the real path (records.py), read back by the decision API's own statement
(serve.py), and every random rule — what an offer's eligibility may say: traits, computed
traits, columns, segments, consent, random buckets, nested groups — must admit exactly the
profiles the compiled SQL selects. This is what lets a marketer target an offer with "the
people of this segment's rule" and get the same people."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activation.decisions import records, serve
from activation.decisions.config import Config
from segments.models import Membership, Segment, SegmentStatus
from segments.rules.evaluate import evaluate
from segments.rules.validate import parse_rule
from segments.tests.test_rules_oracle import (
    CONTEXT,
    DATE_COLUMN_OPS,
    NOW,
    NUMBER_COLUMN_OPS,
    PURPOSE_DEFAULTS,
    _profile,
    _selected,
    _store_consents,
    bucket_conditions,
    comparison,
    consent_conditions,
    profile_strategy,
    trait_conditions,
)
from tests.fixtures import Tenant

SEGMENT_KEYS = ("vip", "lapsed")


def segment_conditions() -> Any:
    return st.builds(lambda key, negate: {"not": {"segment": key}} if negate else {"segment": key},
                     st.sampled_from(SEGMENT_KEYS), st.booleans())  # fmt: skip


@st.composite
def column_conditions(draw: Any) -> dict[str, Any]:
    """The profile columns (counters, money, times) the record carries as JSON: the trait
    strategy reaches them rarely, so they get their own."""
    name = draw(st.sampled_from(["orders", "revenue", "last_seen"]))
    if name == "last_seen":
        return {"trait": name, **comparison(draw, DATE_COLUMN_OPS, column="datetime")}
    return {"trait": name, **comparison(draw, NUMBER_COLUMN_OPS, column="number")}


def decision_rules(depth: int = 0) -> Any:
    """Rules an offer may use: the segment rule language without event conditions."""
    conditions = st.one_of(
        trait_conditions(), column_conditions(), bucket_conditions(), consent_conditions,
        segment_conditions(),
    )  # fmt: skip
    if depth >= 3:
        return conditions
    children = decision_rules(depth + 1)
    groups = st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    )
    return st.one_of(conditions, groups)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=st.lists(profile_strategy, min_size=3, max_size=6),
    members=st.lists(st.sets(st.sampled_from(SEGMENT_KEYS)), min_size=6, max_size=6),
    rule_list=st.lists(decision_rules(), min_size=1, max_size=4),
)
@pytest.mark.django_db
def test_the_decision_evaluator_admits_exactly_what_sql_selects(
    tenant_a: Tenant, specs: list[dict[str, Any]], members: list[set[str]], rule_list: list[Any]
) -> None:
    ws = tenant_a.workspace.pk
    with transaction.atomic():
        segments = {
            key: Segment.objects.create(
                workspace=tenant_a.workspace, key=key, name=key, status=SegmentStatus.PUBLISHED
            )
            for key in SEGMENT_KEYS
        }
        context = dataclasses.replace(
            CONTEXT, find_segment=lambda ref: segments[ref].pk if ref in segments else None
        )
        live = [_profile(ws, spec) for spec in specs]
        for profile in live:
            profile.save()
        _store_consents(ws, list(zip(live, specs, strict=True)))
        Membership.objects.bulk_create(
            Membership(segment=segments[key], profile_id=profile.pk, version=1, entered_at=NOW)
            for profile, keys in zip(live, members, strict=False)
            for key in sorted(keys)
        )
        records.records_build(p.pk for p in live)
        config = Config(workspace_id=ws, version=0, loaded_at=0.0,
                        purpose_defaults=PURPOSE_DEFAULTS)  # fmt: skip
        visitors = {}
        for profile in live:
            row = serve._execute(serve._RECORD, {"profile": profile.pk})
            assert row is not None and row[0] is not None
            full = (0, profile.pk, profile.pk, *row)
            visitors[profile.pk] = serve._visitor(full, {}, config, {})
        for rule in rule_list:
            node = parse_rule(rule, context)
            admitted = {
                pid for pid, v in visitors.items()
                if evaluate(node, profile=v.facts, events=[], now=NOW)
            }  # fmt: skip
            selected = set(_selected(node, ws))
            assert admitted == selected, (
                f"rule {rule}: decision evaluator {sorted(admitted)}, SQL {sorted(selected)}; "
                + "; ".join(f"{pid}: {v.facts}" for pid, v in visitors.items()
                            if (pid in admitted) != (pid in selected))
            )  # fmt: skip
        transaction.set_rollback(True)
    with connection.cursor() as cursor:  # the example's rows are gone with the rollback
        cursor.execute("SELECT count(*) FROM activation_decisionrecord")
        assert cursor.fetchone() == (0,)

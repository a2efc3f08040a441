"""The ML feature builder (segments/ml/features.py): the values of each feature on a
profile whose history is known, point in time (nothing after `as_of` leaks in), and consent
(profiles that may not be used for the ML purpose have no row)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from consent.models import ConsentState, Purpose
from consent.services import purposes_install_defaults
from profiles.models import Profile, ProfileEvent
from segments.ml.features import FeatureSpec, build_features
from tests.fixtures import Tenant

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
_next_event = iter(range(10_000_000, 20_000_000))


@pytest.fixture(autouse=True)
def purposes(tenant_a: Tenant) -> None:
    """The purposes a new workspace gets (analytics, the ML purpose by default, among them)."""
    purposes_install_defaults(workspace=tenant_a.workspace)


def events(profile: Profile, *rows: tuple[timedelta, str, str, dict[str, Any]]) -> None:
    """ProfileEvent rows (what the features read): (age before NOW, type, name, properties)."""
    ProfileEvent.objects.bulk_create(
        [
            ProfileEvent(
                event_id=next(_next_event),
                workspace_id=profile.workspace_id,
                profile_id=profile.pk,
                origin_profile_id=profile.pk,
                timestamp=NOW - age,
                type=kind,
                event=name,
                properties=props if kind == "track" else {},
            )
            for age, kind, name, props in rows
        ]
    )


def order(revenue: Any, *skus: str) -> dict[str, Any]:
    return {"revenue": revenue, "products": [{"product_id": s, "category": s[0]} for s in skus]}


def row(features: Any, profile: Profile) -> dict[str, float]:
    index = features.profile_ids.tolist().index(profile.pk)
    return dict(zip(features.names, features.X[index].tolist(), strict=True))


def test_each_feature_on_a_known_history(tenant_a: Tenant) -> None:
    ann = Profile.objects.create(
        workspace=tenant_a.workspace, traits={"age": "41", "plan": "pro", "tier": 2}
    )
    events(
        ann,
        (100 * DAY, "page", "Home", {}),
        (60 * DAY, "track", "Order Completed", order(10, "A1", "B1")),
        (60 * DAY - timedelta(minutes=10), "track", "Product Viewed", {"product_id": "A1"}),
        (20 * DAY, "track", "Order Completed", order("30", "A2")),
        (5 * DAY, "track", "Product Viewed", {"product_id": "C9", "category": "C"}),
        (1 * DAY, "screen", "Cart", {}),
    )
    spec = FeatureSpec(numeric_traits=("age", "tier"), categories={"plan": ("pro", "free")})
    f = row(build_features(workspace=tenant_a.workspace, spec=spec, as_of=NOW), ann)
    assert f["recency_days"] == pytest.approx(1)
    assert f["tenure_days"] == pytest.approx(100)
    assert f["events"] == 6
    # 100 d, 60 d (+ a view 10 minutes later: the same visit), 20 d, 5 d, 1 d
    assert f["sessions"] == 5
    assert f["orders"] == 2 and f["order_recency_days"] == pytest.approx(20)
    # "30" is a number sent as text: read by the one comparison rule (profiles.coercion)
    assert (f["revenue_sum"], f["revenue_avg"], f["revenue_max"]) == (40, 20, 30)
    assert f["purchase_gap_days"] == pytest.approx(40)
    # days with events: 1, 5, 20, 60 (the order and the view) — and 100, out of every window
    assert (f["active_days_7"], f["active_days_30"], f["active_days_90"]) == (2, 3, 4)
    assert f["distinct_products"] == 4  # A1, B1, A2 bought; C9 viewed
    assert f["distinct_categories"] == 3  # A, B, C
    assert f["share_page"] == pytest.approx(1 / 6)
    assert f["share_screen"] == pytest.approx(1 / 6)
    assert f["share_track"] == pytest.approx(4 / 6)
    assert (f["trait:age"], f["trait:tier"]) == (41, 2)
    assert (f["trait:plan=pro"], f["trait:plan=free"]) == (1, 0)


def test_a_profile_without_purchases_or_traits(tenant_a: Tenant) -> None:
    bob = Profile.objects.create(workspace=tenant_a.workspace)
    events(bob, (10 * DAY, "page", "Home", {}), (3 * DAY, "page", "Pricing", {}))
    spec = FeatureSpec(numeric_traits=("age",))
    f = row(build_features(workspace=tenant_a.workspace, spec=spec, as_of=NOW), bob)
    assert f["orders"] == 0 and f["revenue_sum"] == 0
    assert f["order_recency_days"] == pytest.approx(10)  # tenure when there is no purchase
    assert f["purchase_gap_days"] == pytest.approx(10)
    assert np.isnan(f["trait:age"])  # a missing trait stays missing


def test_nothing_after_as_of_leaks_in(tenant_a: Tenant) -> None:
    """Features as of a moment are the same before and after later events arrive, and a
    profile whose events all come later has no row."""
    rng = random.Random(5)
    names = ["Order Completed", "Product Viewed", "Signed Up"]
    people = [Profile.objects.create(workspace=tenant_a.workspace) for _ in range(40)]
    as_of = NOW - 30 * DAY

    def history(profile: Profile, lo: float, hi: float, count: int) -> None:
        events(profile, *[
            (timedelta(days=rng.uniform(lo, hi)), rng.choice(["track", "track", "page"]),
             rng.choice(names), order(rng.choice([5, 12.5, "20", None]), f"S{rng.randint(1, 9)}"))
            for _ in range(count)
        ])  # fmt: skip

    for person in people:
        history(person, 31, 400, rng.randint(1, 15))  # all before as_of
    spec = FeatureSpec(numeric_traits=("age",))
    before = build_features(workspace=tenant_a.workspace, spec=spec, as_of=as_of)
    for person in people:
        history(person, 0, 29.99, rng.randint(1, 15))  # all after as_of
    late = Profile.objects.create(workspace=tenant_a.workspace)
    history(late, 0, 29, 5)
    after = build_features(workspace=tenant_a.workspace, spec=spec, as_of=as_of)
    assert after.profile_ids.tolist() == before.profile_ids.tolist()
    assert late.pk not in after.profile_ids.tolist()
    np.testing.assert_array_equal(after.X, before.X)
    # and the later events do count once as_of moves past them
    now = build_features(workspace=tenant_a.workspace, spec=spec, as_of=NOW)
    assert now.profile_ids.tolist() == sorted([*after.profile_ids.tolist(), late.pk])
    assert (now.column("events")[:-1] > after.column("events")).all()


def test_profiles_that_refused_the_ml_purpose_have_no_row(tenant_a: Tenant) -> None:
    assert Purpose.objects.get(workspace=tenant_a.workspace, key="analytics").default_granted
    Purpose.objects.create(
        workspace=tenant_a.workspace, key="ml_opt_in", name="Modelling",
        legal_basis="consent", default_granted=False,
    )  # fmt: skip
    people = {}
    for name in ("undecided", "granted", "denied", "withdrawn"):
        people[name] = Profile.objects.create(workspace=tenant_a.workspace)
        events(people[name], (2 * DAY, "page", "Home", {}))
        if name != "undecided":
            ConsentState.objects.create(
                workspace_id=tenant_a.workspace.pk, profile_id=people[name].pk,
                purpose="analytics", status=name, decided_at=NOW, record_id=0,
            )  # fmt: skip
    merged = Profile.objects.create(workspace=tenant_a.workspace, merged_into=people["granted"])
    events(merged, (2 * DAY, "page", "Home", {}))

    def rows() -> set[str]:
        f = build_features(workspace=tenant_a.workspace, spec=FeatureSpec(), as_of=NOW)
        return {name for name, p in people.items() if p.pk in f.profile_ids.tolist()}

    assert rows() == {"undecided", "granted"}  # analytics: allowed unless refused
    tenant_a.workspace.settings = {"ml_purpose": "ml_opt_in"}
    tenant_a.workspace.save()
    assert rows() == set()  # an opt-in purpose nobody granted
    tenant_a.workspace.settings = {"ml_purpose": "no_such_purpose"}
    tenant_a.workspace.save()
    assert rows() == set()  # an undefined purpose allows nobody (fail closed)

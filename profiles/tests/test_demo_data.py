"""Demo data on the real CDNOW history: the generator's guarantees and the command end to end.

Uses the real data set (downloaded from PyPI once per machine, see cdp/datasets.py)."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command, get_commands, load_command_class

from cdp.datasets import dataset_bytes
from cdp.models import Workspace
from profiles.collector.normalize import BatchMeta, normalize_event, parse_timestamp
from profiles.demo.cdnow import Purchase, demo_batches, load_cdnow, parse_cdnow, user_id_of
from profiles.demo.movielens import load_movielens
from profiles.identifiers import normalize_email, normalize_phone
from profiles.models import Event, FailedEvent, Source
from profiles.pipeline import queue
from tests.fixtures import Tenant

NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
LAST_CDNOW_DAY = date(1998, 6, 30)
JUNK = {"undefined", "test@test.com"}


@pytest.fixture(scope="module")
def purchases() -> list[Purchase]:
    return load_cdnow()


def events_of(purchases: list[Purchase], profiles: int, seed: int = 7, **kw: Any) -> list[dict]:
    return [e for batch in demo_batches(purchases, profiles=profiles, seed=seed, now=NOW, **kw)
            for e in batch]  # fmt: skip


def chosen(purchases: list[Purchase], profiles: int) -> dict[str, list[Purchase]]:
    ids = sorted({p.customer_id for p in purchases})[:profiles]
    rows: dict[str, list[Purchase]] = {user_id_of(i): [] for i in ids}
    for p in purchases:
        if user_id_of(p.customer_id) in rows:
            rows[user_id_of(p.customer_id)].append(p)
    return rows


def at(event: dict[str, Any]) -> datetime:
    stamp = parse_timestamp(event["timestamp"], "timestamp")
    assert stamp is not None
    return stamp


def customers_by_anonymous_id(events: list[dict[str, Any]]) -> dict[str, str]:
    """anonymousId -> userId, for every device some customer logged in on."""
    return {
        e["anonymousId"]: e["userId"]
        for e in events
        if e["type"] == "identify" and e.get("userId", "").startswith("cdnow-")
    }


def test_the_same_seed_gives_the_same_events_and_more_profiles_only_add(
    purchases: list[Purchase],
) -> None:
    first = events_of(purchases, 40)
    assert first == events_of(purchases, 40)
    assert first != events_of(purchases, 40, seed=8)
    assert len({e["messageId"] for e in first}) == len(first)

    # a customer's events do not depend on how many customers are generated, so loading
    # more profiles later stores only the new customers' events
    more = {e["messageId"]: e for e in events_of(purchases, 80)}
    assert all(more[e["messageId"]] == e for e in first)


def test_every_purchase_becomes_one_order_with_its_real_amount_and_date(
    purchases: list[Purchase],
) -> None:
    events = events_of(purchases, 300)
    shift = (NOW.date() - timedelta(days=1)) - LAST_CDNOW_DAY
    orders: dict[str, list[tuple[float, int, date]]] = defaultdict(list)
    for e in events:
        if e.get("event") == "Order Completed":
            props = e["properties"]
            assert props["currency"] == "USD"
            assert sum(line["quantity"] for line in props["products"]) == props["quantity"]
            orders[e["userId"]].append((props["revenue"], props["quantity"], at(e).date()))

    expected = {
        user: sorted((float(p.amount), p.quantity, p.day + shift) for p in rows)
        for user, rows in chosen(purchases, 300).items()
    }
    assert {user: sorted(rows) for user, rows in orders.items()} == expected
    order_ids = [e["properties"]["order_id"] for e in events if e.get("event") == "Order Completed"]
    assert len(set(order_ids)) == len(order_ids) == sum(len(r) for r in expected.values())


def test_batches_are_chronological_and_in_the_past(purchases: list[Purchase]) -> None:
    batches = list(demo_batches(purchases, profiles=100, seed=7, now=NOW, batch_size=200))
    assert all(len(b) <= 200 for b in batches) and all(len(b) == 200 for b in batches[:-1])
    times = [at(e) for batch in batches for e in batch]
    assert times == sorted(times)
    assert times[-1] < NOW
    assert all(e["timestamp"].endswith("Z") for batch in batches for e in batch)


def test_each_device_browses_anonymously_before_its_identify(purchases: list[Purchase]) -> None:
    events = events_of(purchases, 300)
    logins = customers_by_anonymous_id(events)
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_device[e["anonymousId"]].append(e)
        assert e["context"]["device"]["id"] and e["context"]["library"]["name"]
        assert e["context"]["ip"] and e["context"]["userAgent"]

    for anonymous_id in logins:
        timeline = sorted(by_device[anonymous_id], key=at)
        first_known = next(i for i, e in enumerate(timeline) if e.get("userId"))
        assert timeline[first_known]["type"] == "identify"
        assert first_known >= 1  # something was seen before the login
        assert all("userId" not in e for e in timeline[:first_known])
        assert {e["type"] for e in timeline[:first_known]} <= {"page", "track"}

    # the first identify of each customer comes with their first order, with full traits
    for user in chosen(purchases, 300):
        mine = sorted((e for e in events if e.get("userId") == user), key=at)
        assert mine[0]["type"] == "identify" and mine[1]["event"] == "Order Completed"
        assert mine[1]["anonymousId"] == mine[0]["anonymousId"]
        assert timedelta(0) < at(mine[1]) - at(mine[0]) < timedelta(minutes=5)
        traits = mine[0]["traits"]
        assert {"email", "first_name", "last_name", "created_at"} <= set(traits)


def test_second_devices_email_lookups_and_junk_in_the_stated_shares(
    purchases: list[Purchase],
) -> None:
    profiles = 1000
    events = events_of(purchases, profiles)
    devices: dict[str, set[str]] = defaultdict(set)
    for anonymous_id, user in customers_by_anonymous_id(events).items():
        devices[user].add(anonymous_id)
    emails = {
        e["userId"]: e["traits"]["email"]
        for e in events
        if e["type"] == "identify" and "created_at" in e.get("traits", {})
    }
    assert len(set(emails.values())) == profiles  # never two customers with one email
    owner = {email: user for user, email in emails.items()}

    lookups: set[str] = set()
    junk: set[str] = set()
    logins = customers_by_anonymous_id(events)
    for e in events:
        email = e.get("traits", {}).get("email")
        if e.get("userId") in JUNK or email in JUNK:
            junk.add(logins[e["anonymousId"]])  # sent with the customer's own anonymousId
        elif e["type"] == "identify" and "userId" not in e:
            assert set(e["traits"]) == {"email"} and email not in owner  # typed differently
            lookups.add(owner[normalize_email(email) or ""])
            assert e["anonymousId"] not in logins  # a third browser

    two_devices = {user for user, ids in devices.items() if len(ids) == 2}
    assert all(len(ids) <= 2 for ids in devices.values())
    assert 0.25 < len(two_devices) / profiles < 0.35
    assert 0.11 < len(lookups) / profiles < 0.19
    assert 0.025 < len(junk) / profiles < 0.075

    rows = chosen(purchases, profiles)
    for user in two_devices:
        if len(rows[user]) > 1:  # later orders exist: at least one is placed on device two
            used = {e["anonymousId"] for e in events if e.get("event") == "Order Completed"
                    and e["userId"] == user}  # fmt: skip
            assert used == devices[user]

    phones = [e["traits"]["phone"] for e in events if "phone" in e.get("traits", {})]
    assert 0.4 < len(phones) / profiles < 0.6
    normalised = [normalize_phone(p, "US") for p in phones]
    assert all(n and n.startswith("+1") and n[-4:-2] == "01" for n in normalised)
    assert len(set(normalised)) == len(phones)
    assert len({p for p in phones if p.startswith("+")}) < len(phones)  # varied formats


def test_every_event_passes_the_collector_normaliser(purchases: list[Purchase]) -> None:
    meta = BatchMeta(received_at=NOW)
    for e in events_of(purchases, 200):
        normalized = normalize_event(e, meta, forced_type=None)
        assert normalized.message_id == e["messageId"]
        assert normalized.timestamp == at(e)  # no batch sentAt: kept as sent, not skewed
        assert normalized.extra == {}


@pytest.mark.django_db
def test_command_loads_the_events_once(purchases: list[Purchase]) -> None:
    out = io.StringIO()
    call_command("cdp_demo_data", profiles=30, workspace="Demo test", seed=5, stdout=out)

    workspace = Workspace.objects.get(name="Demo test")
    source = Source.objects.get(workspace=workspace, name="Demo data (CDNOW)")
    expected = sum(
        len(b) for b in demo_batches(purchases, profiles=30, seed=5, now=datetime.now(tz=UTC))
    )
    # and the film views of MovieLens' first 30 people, given to the first 30 customers
    ratings, _ = load_movielens()
    films = sum(1 for r in ratings if r.user <= 30)
    expected += films
    assert Event.objects.filter(workspace=workspace, source=source).count() == expected
    first = sorted({p.customer_id for p in purchases})[0]
    assert Event.objects.filter(
        workspace=workspace, event="Product Viewed", user_id=user_id_of(first),
        properties__product_id__startswith="film-",
    ).count() == sum(1 for r in ratings if r.user == 1)  # fmt: skip
    assert not FailedEvent.objects.filter(workspace=workspace).exists()
    assert queue.pending_count(workspace.pk) == 0
    assert f"Demo data: {expected:,} events stored, 0 duplicates, 0 failed" in out.getvalue()
    assert " 100%  sent" in out.getvalue()
    assert "log in as 'admin'" in out.getvalue()  # a new workspace gets an owner
    again = io.StringIO()
    call_command("cdp_demo_data", profiles=30, workspace="Demo test", seed=5, stdout=again)
    assert Event.objects.filter(workspace=workspace).count() == expected
    assert f"Demo data: 0 events stored, {expected:,} duplicates" in again.getvalue()
    assert Source.objects.filter(workspace=workspace).filter(name__startswith="Demo").count() == 1


@pytest.mark.django_db
def test_command_uses_an_existing_workspace_as_it_is(tenant_a: Tenant) -> None:
    members = set(tenant_a.workspace.memberships.values_list("user__username", flat=True))
    call_command(
        "cdp_demo_data", profiles=3, workspace="Alpha", no_films=True, stdout=io.StringIO()
    )
    assert Event.objects.filter(workspace=tenant_a.workspace).exists()
    assert set(tenant_a.workspace.memberships.values_list("user__username", flat=True)) == members
    assert Workspace.objects.filter(name="Alpha").count() == 1


def test_cdp_run_can_call_it_with_a_workspace() -> None:
    # cdp_run --demo-data looks the command up by name and passes --workspace when accepted
    command = load_command_class(get_commands()["cdp_demo_data"], "cdp_demo_data")
    parser = command.create_parser("manage.py", "cdp_demo_data")
    defaults = {a.dest: a.default for a in parser._actions}
    assert defaults["workspace"] == "Demo" and defaults["profiles"] == 2000


def test_real_cdnow_purchase_history_from_pypi() -> None:
    """Downloads lifetimes 0.11.3 from PyPI on first run on a machine (then cached)."""
    purchases = parse_cdnow(dataset_bytes("cdnow"))
    assert len(purchases) == 69_659
    assert len({p.customer_id for p in purchases}) == 23_570
    assert min(p.day for p in purchases).isoformat() == "1997-01-01"
    assert max(p.day for p in purchases).isoformat() == "1998-06-30"
    assert str(sum(p.amount for p in purchases)) == "2500315.63"

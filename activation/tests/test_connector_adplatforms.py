"""Google Customer Match and Meta Custom Audiences against a local stand-in of their public
APIs (adplatform_server): the lists end up holding exactly the members' digests, normalised as
each platform documents; only changes are sent; rate limits wait, bad tokens dead-letter at
once, server errors retry safely; requests respect the per-request limits; deletions remove the
person; the match rate counts members with a usable identifier."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from django.test import Client
from django.utils import timezone

from activation import connectors, services
from activation.connectors.adplatforms import google_partial_failures
from activation.connectors.base import Item, Target
from activation.delivery import engine
from activation.models import Delivery, DeliveryAttempt, Destination
from activation.syncs.services import sync_preview
from activation.tests.adplatform_server import AdPlatforms, ad_platforms
from activation.tests.connector_helpers import statuses
from activation.tests.helpers import deliveries, drain, people, pro_segment, run, sync_of
from cdp.errors import ValidationFailed
from cdp.models import Role
from consent import privacy
from consent.services import purposes_install_defaults
from tests.fixtures import Tenant, send_events

LIST = "555000"
AUDIENCE = "2385000"
JOHN = {"email": " John.Doe@Gmail.com ", "phone": "+49 151 12345678", "plan": "pro"}


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def emails(n: int, start: int = 0) -> set[str]:
    return {sha(f"person.{i}@example.com") for i in range(start, start + n)}


def identify(tenant: Tenant, **users: dict[str, Any]) -> None:
    send_events(
        Client(),
        tenant,
        *[{"type": "identify", "userId": uid, "traits": traits} for uid, traits in users.items()],
    )


def destination(
    tenant: Tenant, server: AdPlatforms, kind: str, *, token: str | None = None, **options: Any
) -> Destination:
    purposes_install_defaults(workspace=tenant.workspace)
    if kind == "google_customer_match":
        config: dict[str, Any] = {
            "customer_id": "123-456-7890",
            "user_list_id": LIST,
            "api_base": server.google_base,
            "developer_token": server.developer_token,
            "access_token": token or server.google_token,
        }
    else:
        config = {
            "audience_id": AUDIENCE,
            "api_base": server.meta_base,
            "access_token": token or server.meta_token,
        }
    config.update(options.pop("config", {}))
    made, _ = services.destination_create(
        workspace=tenant.workspace,
        data={
            "name": options.pop("name", kind),
            "kind": kind,
            "purpose": options.pop("purpose", "analytics"),
            "config": config,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
            **options,
        },
    )
    return made


def target(server: AdPlatforms, kind: str, **config: Any) -> Target:
    """A destination as the connector sees it, for sends without the engine."""
    if kind == "google_customer_match":
        settings = {
            "customer_id": "1234567890",
            "user_list_id": LIST,
            "api_base": server.google_base,
        }
        secrets = {"developer_token": server.developer_token, "access_token": server.google_token}
    else:
        settings = {"audience_id": AUDIENCE, "api_base": server.meta_base}
        secrets = {"access_token": server.meta_token}
    return Target(1, 1, "direct", kind, {**settings, **config}, secrets, 60.0, 10_000)


def members(server: AdPlatforms, kind: str) -> set[str]:
    return (
        server.google_lists[LIST]
        if kind == "google_customer_match"
        else server.meta_audiences[AUDIENCE]
    )


def google_identifiers(server: AdPlatforms) -> list[list[dict[str, str]]]:
    """Every UserData sent, as its list of identifiers."""
    return [
        next(iter(op.values()))["userIdentifiers"]
        for r in server.calls("google")
        if r.action.endswith(":addOperations")
        for op in r.params["operations"]
    ]


# ---- normalisation --------------------------------------------------------------------------


def test_normalisation_as_each_platform_documents() -> None:
    google = connectors.get("google_customer_match")
    meta = connectors.get("meta_custom_audience")
    for connector in (google, meta):
        assert connector.hashed_only and connector.identifier_types == ("email", "phone")
        assert connector.normalise("email", " John.Doe@Gmail.com ") == "john.doe@gmail.com"
        assert connector.normalise("email", "not an address") is None
        assert connector.normalise("phone", "12") is None
        assert connector.normalise("user_id", "u-1") is None
    assert google.normalise("phone", "+4915112345678") == "+4915112345678"  # E.164
    assert meta.normalise("phone", "+4915112345678") == "4915112345678"  # digits, country code
    assert google.normalise("phone", "+49 151 12345678") == "+4915112345678"


# ---- Google Customer Match through the engine -----------------------------------------------


def test_google_list_holds_exactly_the_members_and_follows_them(tenant_a: Tenant) -> None:
    people(tenant_a, 21)
    identify(tenant_a, john=JOHN, nomail={"plan": "pro"})
    segment = pro_segment(tenant_a)
    with ad_platforms() as server:
        dest = destination(
            tenant_a,
            server,
            "google_customer_match",
            config={"login_customer_id": "111-222-3333", "identifiers_per_request": 10},
        )
        sync = sync_of(tenant_a, segment, dest)
        first = run(sync)
        assert first is not None and (first.added, first.skipped_no_identifier) == (22, 1)
        drain(dest)
        john = {sha("john.doe@gmail.com"), sha("+4915112345678")}
        assert server.google_lists[LIST] == emails(21) | john
        assert deliveries(destination=dest, status="delivered") == 22

        calls = server.calls("google")
        assert all(r.status == 200 for r in calls)
        assert all(r.headers["login-customer-id"] == "1112223333" for r in calls)
        create = calls[0]
        assert create.path == "/v20/customers/1234567890/offlineUserDataJobs:create"
        assert create.params["job"] == {
            "type": "CUSTOMER_MATCH_USER_LIST",
            "customerMatchUserListMetadata": {
                "userList": f"customers/1234567890/userLists/{LIST}",
                "consent": {"adUserData": "GRANTED", "adPersonalization": "GRANTED"},
            },
        }
        # 23 identifiers, at most 10 a request, then the run
        adds = [r for r in calls if r.action.endswith(":addOperations")]
        sizes = [
            sum(len(next(iter(op.values()))["userIdentifiers"]) for op in r.params["operations"])
            for r in adds
        ]
        assert sum(sizes) == 23 and max(sizes) <= 10 and len(adds) == 3
        assert all(r.params["enablePartialFailure"] is True for r in adds)
        assert calls[-1].action.endswith(":run") and len(calls) == 5
        # one person is one UserData: John's address and phone travel together
        assert [
            {"hashedEmail": sha("john.doe@gmail.com")},
            {"hashedPhoneNumber": sha("+4915112345678")},
        ] in google_identifiers(server)

        # three leave: one remove job with their digests, nothing else
        identify(tenant_a, **{f"user-{i}": {"plan": "free"} for i in range(3)})
        delta = run(sync)
        assert delta is not None and (delta.removed, delta.added, delta.updated) == (3, 0, 0)
        before = len(server.requests)
        drain(dest)
        new = server.requests[before:]
        assert [r.action.split(":")[-1] for r in new] == ["create", "addOperations", "run"]
        assert "consent" not in new[0].params["job"]["customerMatchUserListMetadata"]
        ops = new[1].params["operations"]
        assert {next(iter(op)) for op in ops} == {"remove"}
        assert {i["hashedEmail"] for op in ops for i in op["remove"]["userIdentifiers"]} == emails(
            3
        )
        assert server.google_lists[LIST] == emails(18, start=3) | john
        assert run(sync) is None  # nothing more to send


# ---- Meta Custom Audiences through the engine -----------------------------------------------


def test_meta_audience_holds_exactly_the_members_and_a_small_change_sends_only_it(
    tenant_a: Tenant,
) -> None:
    people(tenant_a, 100)
    identify(tenant_a, john=JOHN)
    segment = pro_segment(tenant_a)
    with ad_platforms() as server:
        dest = destination(tenant_a, server, "meta_custom_audience", batch_size=500)
        sync = sync_of(tenant_a, segment, dest)
        run(sync)
        drain(dest)
        john = {sha("john.doe@gmail.com"), sha("4915112345678")}  # Meta: digits, no "+"
        assert server.meta_audiences[AUDIENCE] == emails(100) | john

        calls = server.calls("meta")
        assert [(r.method, r.path) for r in calls] == [("POST", f"/v21.0/{AUDIENCE}/users")] * 2
        assert all(r.headers["content-type"] == "application/x-www-form-urlencoded" for r in calls)
        payloads = [r.params for r in calls]
        schemas = {p["payload"] for p in payloads}
        assert any('"schema":"EMAIL_SHA256"' in s for s in schemas)
        assert any('"schema":"PHONE_SHA256"' in s for s in schemas)
        assert all('"last_batch_flag":true' in p["session"] for p in payloads)

        # 1 % of the audience leaves: one request, with that one digest
        identify(tenant_a, **{"user-42": {"plan": "free"}})
        run(sync)
        before = len(server.requests)
        drain(dest)
        new = server.requests[before:]
        assert [r.method for r in new] == ["DELETE"]
        assert new[0].params["payload"] == (
            '{"schema":"EMAIL_SHA256","data":["' + sha("person.42@example.com") + '"]}'
        )
        assert server.meta_audiences[AUDIENCE] == (emails(100) - emails(1, start=42)) | john


# ---- rate limits, bad tokens, server errors -------------------------------------------------


def test_google_rate_limit_waits_for_the_retry_delay_and_is_not_an_attempt(
    tenant_a: Tenant,
) -> None:
    people(tenant_a, 5)
    segment = pro_segment(tenant_a)
    with ad_platforms() as server:
        dest = destination(tenant_a, server, "google_customer_match")
        run(sync_of(tenant_a, segment, dest))
        server.then("google", "rate_limit", retry_after=1)  # quotaErrorDetails.retryDelay "1s"
        drain(dest)
        assert server.google_lists[LIST] == emails(5)
        calls = server.calls("google")
        throttled = [r for r in calls if r.status == 429]
        assert len(throttled) == 1
        later = [r.at for r in calls if r.at > throttled[0].at]
        assert later and min(later) - throttled[0].at >= 1.0  # nothing before the delay
        rows = Delivery.objects.filter(destination=dest)
        assert {(d.status, d.attempts) for d in rows} == {("delivered", 1)}
        outcomes = DeliveryAttempt.objects.filter(destination=dest).order_by("id")
        assert [(a.outcome, a.reason) for a in outcomes] == [
            ("throttled", "rate_limited"),
            ("ok", ""),
        ]


def test_meta_rate_limit_codes_throttle_for_the_advertised_time(tenant_a: Tenant) -> None:
    people(tenant_a, 4)
    segment = pro_segment(tenant_a)
    with ad_platforms() as server:
        dest = destination(tenant_a, server, "meta_custom_audience")
        run(sync_of(tenant_a, segment, dest))
        # code 80003, X-Business-Use-Case-Usage: estimated_time_to_regain_access 1 (minute)
        server.then("meta", "rate_limit")
        engine.deliver(dest.pk, budget=5)
        rows = list(Delivery.objects.filter(destination=dest))
        assert {(d.status, d.attempts, d.reason) for d in rows} == {("pending", 0, "rate_limited")}
        wait = (rows[0].next_attempt_at - timezone.now()).total_seconds()
        assert 50 < wait <= 60
        dest.refresh_from_db()
        assert dest.paused_until is not None and dest.paused_until > timezone.now() + timedelta(
            seconds=50
        )
        assert len(server.calls("meta")) == 1

        # skip the minute; this time Meta also says Retry-After: 1
        Delivery.objects.filter(destination=dest).update(next_attempt_at=timezone.now())
        Destination.objects.filter(pk=dest.pk).update(paused_until=None)
        server.then("meta", "rate_limit", retry_after=1)
        drain(dest)
        calls = server.calls("meta")
        assert [r.status for r in calls] == [400, 400, 200]
        assert calls[2].at - calls[1].at >= 1.0
        assert server.meta_audiences[AUDIENCE] == emails(4)
        assert {(d.status, d.attempts) for d in Delivery.objects.filter(destination=dest)} == {
            ("delivered", 1)
        }


@pytest.mark.parametrize("kind", ["google_customer_match", "meta_custom_audience"])
def test_a_refused_token_dead_letters_after_one_attempt(tenant_a: Tenant, kind: str) -> None:
    people(tenant_a, 3)
    segment = pro_segment(tenant_a)
    with ad_platforms() as server:
        dest = destination(tenant_a, server, kind, token="expired-token")  # noqa: S106
        run(sync_of(tenant_a, segment, dest))
        drain(dest)
        platform = "google" if kind == "google_customer_match" else "meta"
        assert [r.status for r in server.calls(platform)] == [401 if platform == "google" else 400]
        assert set(statuses(dest)) == {("dead", "auth_failed", 1)} and len(statuses(dest)) == 3
        assert DeliveryAttempt.objects.filter(destination=dest).count() == 1
        assert not members(server, kind)


def test_server_errors_retry_and_a_retried_batch_is_harmless(tenant_a: Tenant) -> None:
    people(tenant_a, 25)
    segment = pro_segment(tenant_a)
    with ad_platforms() as server:
        dest = destination(
            tenant_a, server, "meta_custom_audience", config={"records_per_request": 10}
        )
        run(sync_of(tenant_a, segment, dest))
        # the third request of the batch fails: the retry sends all three again
        server.then("meta", "serve", times=2).then("meta", "server_error")
        drain(dest)
        calls = server.calls("meta")
        assert [r.status for r in calls] == [200, 200, 500, 200, 200, 200]
        sessions = [orjson.loads(r.params["session"]) for r in calls]
        assert [s["batch_seq"] for s in sessions] == [1, 2, 3, 1, 2, 3]
        assert len({s["session_id"] for s in sessions}) == 1  # the retry is the same session
        assert [s["last_batch_flag"] for s in sessions[3:]] == [False, False, True]
        assert server.meta_audiences[AUDIENCE] == emails(25)
        rows = Delivery.objects.filter(destination=dest)
        assert {(d.status, d.attempts) for d in rows} == {("delivered", 2)}


# ---- batching at the documented limits, item kinds, without the engine ----------------------


def test_meta_splits_at_ten_thousand_records() -> None:
    items = [
        Item(
            i,
            f"00000000-0000-0000-0000-{i:012d}",
            "upsert",
            i,
            {"added": {"email_sha256": [sha(str(i))]}},
        )
        for i in range(1, 10_002)
    ]
    with ad_platforms() as server:
        outcome = connectors.get("meta_custom_audience").send(
            target(server, "meta_custom_audience"), items
        )
        assert outcome.ok, outcome.error
        calls = server.calls("meta")
        assert [len(orjson.loads(r.params["payload"])["data"]) for r in calls] == [10_000, 1]
        assert len(server.meta_audiences[AUDIENCE]) == 10_001


def test_google_splits_at_one_hundred_thousand_identifiers_and_twenty_per_person() -> None:
    # 5,000 people with 20 addresses, then one with 25 (UserData of 20 and 5): 100,025
    items = [
        Item(
            i,
            f"00000000-0000-0000-0000-{i:012d}",
            "upsert",
            i,
            {"added": {"email_sha256": [sha(f"{i}.{n}") for n in range(25 if i == 5_001 else 20)]}},
        )
        for i in range(1, 5_002)
    ]
    with ad_platforms() as server:
        outcome = connectors.get("google_customer_match").send(
            target(server, "google_customer_match", identifiers_per_request=100_000), items
        )
        assert outcome.ok, outcome.error
        adds = [r for r in server.calls("google") if r.action.endswith(":addOperations")]
        per_request = [
            sum(len(op["create"]["userIdentifiers"]) for op in r.params["operations"]) for r in adds
        ]
        assert per_request == [100_000, 25]
        assert max(len(ids) for ids in google_identifiers(server)) == 20
        assert len(server.google_lists[LIST]) == 100_025


@pytest.mark.parametrize("kind", ["google_customer_match", "meta_custom_audience"])
def test_each_kind_of_item_becomes_adds_and_removes(kind: str) -> None:
    a, b, c, d, e, f, g, h, x, y = (sha(s) for s in "abcdefghxy")

    def item(n: int, kind: str, profile: int | None, **payload: Any) -> Item:
        return Item(n, f"00000000-0000-0000-0000-{n:012d}", kind, profile, payload)

    items = [
        item(1, "upsert", 1, added={"email_sha256": [a], "phone_sha256": [b]}, removed={}),
        item(2, "upsert", 2, added={"email_sha256": [c]}, removed={"email_sha256": [d]}),
        item(3, "remove", 3, removed={"email_sha256": [e]}),
        item(4, "event", 4, type="track"),
        item(5, "deletion", None, identifiers={"email_sha256": [f], "phone_sha256": [g]}),
        item(6, "upsert", 5, added={"email_sha256": [x]}),  # added, then removed: gone
        item(7, "remove", 5, removed={"email_sha256": [x]}),
        item(8, "remove", 6, removed={"email_sha256": [y]}),  # a merge: another profile keeps it
        item(9, "upsert", 7, added={"email_sha256": [y]}),
        item(10, "upsert", 8, added={"email_sha256": ["john.doe@gmail.com"]}),  # never unhashed
    ]
    with ad_platforms() as server:
        members(server, kind).update({d, e, f, g, h, x})
        outcome = connectors.get(kind).send(target(server, kind), items)
        assert outcome.ok, outcome.error
        assert outcome.rejected == {4: "unsupported_kind", 10: "invalid_identifier"}
        assert members(server, kind) == {a, b, c, h, y}
        assert "john.doe@gmail.com" not in str([r.body for r in server.requests])
        if kind == "google_customer_match":
            # removes and adds never share a job
            assert {j.operation for j in server.jobs.values()} == {"create", "remove"}
            assert all(j.status == "SUCCESS" for j in server.jobs.values())


def test_the_stand_in_refuses_unhashed_data_in_each_platforms_format() -> None:
    with ad_platforms() as server:
        meta = httpx.post(
            f"{server.meta_base}/{AUDIENCE}/users",
            data={"payload": '{"schema":"EMAIL_SHA256","data":["john@example.com"]}'},
            headers={"authorization": f"Bearer {server.meta_token}"},
        )
        assert meta.status_code == 400 and meta.json()["error"]["code"] == 100
        headers = {
            "authorization": f"Bearer {server.google_token}",
            "developer-token": server.developer_token,
        }
        job = httpx.post(
            f"{server.google_base}/customers/1234567890/offlineUserDataJobs:create",
            json={
                "job": {
                    "type": "CUSTOMER_MATCH_USER_LIST",
                    "customerMatchUserListMetadata": {
                        "userList": f"customers/1234567890/userLists/{LIST}"
                    },
                }
            },
            headers=headers,
        ).json()["resourceName"]
        answer = httpx.post(
            f"{server.google_base}/{job}:addOperations",
            json={
                "operations": [
                    {"create": {"userIdentifiers": [{"hashedEmail": sha("ok")}]}},
                    {"create": {"userIdentifiers": [{"hashedEmail": "john@example.com"}]}},
                    {"remove": {"userIdentifiers": [{"hashedEmail": sha("ok")}]}},
                ],
                "enablePartialFailure": True,
            },
            headers=headers,
        )
        assert answer.status_code == 200
        assert google_partial_failures(answer.json()) == {
            1: "invalid_sha256_format",
            2: "conflicting_operation",
        }


# ---- deletion -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["google_customer_match", "meta_custom_audience"])
def test_a_deletion_removes_the_persons_digests(tenant_a: Tenant, kind: str) -> None:
    people(tenant_a, 3)
    identify(tenant_a, john=JOHN)
    segment = pro_segment(tenant_a)
    with ad_platforms() as server:
        dest = destination(tenant_a, server, kind)
        run(sync_of(tenant_a, segment, dest))
        drain(dest)
        phone = "+4915112345678" if kind == "google_customer_match" else "4915112345678"
        john = {sha("john.doe@gmail.com"), sha(phone)}
        assert members(server, kind) == emails(3) | john

        owner = tenant_a.users[Role.OWNER]
        request = privacy.privacy_request_create(
            workspace=tenant_a.workspace,
            type="delete",
            identifier="email:john.doe@gmail.com",
            actor=owner,
        )
        privacy.privacy_request_approve(request=request, actor=owner)
        privacy.privacy_request_execute(request_id=request.pk)
        notice = Delivery.objects.get(destination=dest, kind="deletion")
        drain(dest)
        notice.refresh_from_db()
        assert notice.status == "delivered"
        assert members(server, kind) == emails(3)


# ---- the match rate, the Send test button, settings -----------------------------------------


def test_match_rate_counts_members_with_an_email_or_phone(tenant_a: Tenant) -> None:
    people(tenant_a, 6)
    identify(
        tenant_a,
        phone1={"plan": "pro", "phone": "+49 151 11111111"},
        phone2={"plan": "pro", "phone": "+1 415 555 0100"},
        bare1={"plan": "pro"},
        bare2={"plan": "pro", "phone": "not a number"},
    )
    segment = pro_segment(tenant_a)
    with ad_platforms() as server:
        # advertising is opt-in: everyone matches, nobody may be sent yet
        dest = destination(tenant_a, server, "google_customer_match", purpose="advertising")
        both = sync_preview(
            workspace=tenant_a.workspace,
            segment_id=segment.pk,
            destination_id=dest.pk,
            mapping=None,
        )
        assert (both["members"], both["with_identifier"], both["match_rate"]) == (10, 8, 0.8)
        assert both["sendable_rate"] == 0.0
        email_only = sync_preview(
            workspace=tenant_a.workspace,
            segment_id=segment.pk,
            destination_id=dest.pk,
            mapping={"identifiers": [{"type": "email"}]},
        )
        assert email_only["match_rate"] == 0.6
        assert email_only["mapping"]["identifiers"] == [
            {"type": "email", "hash": "sha256", "as": "email_sha256"}
        ]


def test_send_test_reads_the_list_and_explains_failures(tenant_a: Tenant) -> None:
    with ad_platforms() as server:
        google, meta = "google_customer_match", "meta_custom_audience"
        cases: list[tuple[str, dict[str, Any], bool, str]] = [
            (google, {}, True, "'CDP members' found"),
            (google, {"token": "bad"}, False, "access token or developer token"),
            (google, {"config": {"user_list_id": "999"}}, False, "no user list 999"),
            (google, {"config": {"api_base": "http://127.0.0.1:9/v20"}}, False, "cannot reach"),
            (meta, {}, True, "'CDP members' found"),
            (meta, {"token": "bad"}, False, "access token was refused"),
            (meta, {"config": {"audience_id": "999"}}, False, "no custom audience 999"),
            (meta, {"config": {"api_base": "http://127.0.0.1:9/v21.0"}}, False, "cannot reach"),
        ]
        for n, (kind, options, ok, message) in enumerate(cases):
            dest = destination(tenant_a, server, kind, name=f"test {n}", **options)
            result = services.destination_test(destination=dest)
            assert (result["ok"], message in result["message"]) == (ok, True), result
        search = [r for r in server.calls("google") if r.action == "googleAds:search"][0]
        assert search.params["query"].endswith(f"FROM user_list WHERE user_list.id = {LIST}")
        read = [r for r in server.calls("meta") if r.method == "GET"][0]
        assert read.query["fields"] == [
            "id,name,approximate_count_lower_bound,approximate_count_upper_bound"
        ]


def test_settings_are_checked(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    with pytest.raises(ValidationFailed) as google:
        services.destination_create(
            workspace=tenant_a.workspace,
            data={
                "name": "G",
                "kind": "google_customer_match",
                "purpose": "advertising",
                "config": {
                    "customer_id": "12-345",
                    "user_list_id": "abc",
                    "identifiers_per_request": 200_000,
                },
            },
        )
    assert set(google.value.fields) == {
        "config.customer_id",
        "config.user_list_id",
        "config.identifiers_per_request",
        "config.developer_token",
        "config.access_token",
    }
    with pytest.raises(ValidationFailed) as meta:
        services.destination_create(
            workspace=tenant_a.workspace,
            data={
                "name": "M",
                "kind": "meta_custom_audience",
                "purpose": "advertising",
                "config": {"audience_id": "x1", "records_per_request": 10_001, "access_token": "t"},
            },
        )
    assert set(meta.value.fields) == {"config.audience_id", "config.records_per_request"}

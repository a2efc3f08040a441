"""The decision API end to end on real Postgres and Redis: placements and offers checked with
clear errors, the answer for known and unknown visitors (offers by segment, trait and context,
priority, explain with the failed path), frequency caps from recorded impressions,
experiments with sticky exposures (also for anonymous visitors who later get a profile),
consent, browser mode (CORS, trait allowlist, rate limit), the degraded answer when Postgres
is slow or unreachable, the record kept current by the pipeline and the sweep, privacy."""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest
from django.db import close_old_connections, connection
from django.test import Client
from django.utils import timezone

from activation import privacy as activation_privacy
from activation.decisions import services
from activation.decisions.models import DecisionRecord
from activation.experiments import services as experiments
from activation.experiments.models import Exposure
from activation.services import server_key_create
from cdp.errors import Conflict, ValidationFailed
from consent.services import consent_record, purpose_create
from profiles.models import Identity, Profile
from profiles.privacy import Subject
from segments.services import segment_create
from tests.fixtures import Tenant, send_events

HERO_SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {"title": {"type": "string", "maxLength": 80}, "image": {"type": "string"}},
}


def server_client(tenant: Tenant) -> Client:
    key = server_key_create(workspace=tenant.workspace, name="site backend")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key.secret}")


def decide(client: Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/decide", data=orjson.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


def people(client: Client, tenant: Tenant, *, personalise: bool = True) -> None:
    """Three known people; personalisation allowed unless they object (legitimate interest),
    or, with `personalise=False`, only for those who said yes (consent)."""
    purpose_create(workspace=tenant.workspace, key="personalization", name="Personalisation",
                   legal_basis="legitimate_interest" if personalise else "consent",
                   default_granted=personalise)  # fmt: skip
    send_events(
        client, tenant,
        {"type": "identify", "userId": "ann", "anonymousId": "a-ann",
         "traits": {"plan": "pro", "country": "FR", "email": "ann@example.com"}},
        {"type": "identify", "userId": "bob", "traits": {"plan": "free", "country": "DE",
                                                         "email": "bob@example.com"}},
        {"type": "identify", "userId": "cat", "traits": {"plan": "pro", "country": "DE"}},
    )  # fmt: skip


def hero(tenant: Tenant, **extra: Any) -> None:
    services.placement_create(
        workspace=tenant.workspace, actor=None,
        data={"key": "home_hero", "name": "Home hero", "content_schema": HERO_SCHEMA,
              "default_content": {"title": "Welcome"}, **extra},
    )  # fmt: skip


def offer(tenant: Tenant, key: str, **extra: Any) -> None:
    services.offer_create(
        workspace=tenant.workspace, actor=None,
        data={"key": key, "name": key.replace("_", " "), "placement": "home_hero",
              "content": {"title": key}, **extra},
    )  # fmt: skip


@pytest.mark.django_db
def test_placements_and_offers_are_checked_with_clear_errors(tenant_a: Tenant) -> None:
    with pytest.raises(ValidationFailed) as bad:
        services.placement_create(
            workspace=tenant_a.workspace, actor=None,
            data={"key": "Home Hero", "name": "", "content_schema": {"type": "thing"},
                  "recommendations_count": 99},
        )  # fmt: skip
    assert set(bad.value.fields) == {"key", "name", "content_schema", "recommendations_count"}
    assert "not a valid JSON Schema" in bad.value.fields["content_schema"][0]
    with pytest.raises(ValidationFailed) as bad:
        hero(tenant_a, default_content={"title": 5})
    assert bad.value.fields == {"default_content.title": ["5 is not of type 'string'"]}
    hero(tenant_a)
    segment_create(workspace=tenant_a.workspace, name="Pro", rule={"trait": "plan", "op": "eq",
                   "value": "pro"}, publish=True)  # fmt: skip
    with pytest.raises(ValidationFailed) as bad:
        offer(
            tenant_a, "spring_sale", content={"image": 3},
            eligibility={"all": [{"segment": "nope"},
                                 {"event": "Order Completed", "count": {"op": "gte", "value": 1}},
                                 {"context": "page.url", "op": "gt", "value": "x"}]},
            starts_at="2026-12-24", ends_at="2026-12-01", cap_day=500, weight=0, rank_by="churn",
        )  # fmt: skip
    fields = bad.value.fields
    assert fields["content"] == ["'title' is a required property"]
    assert fields["content.image"] == ["3 is not of type 'string'"]
    assert "no published segment 'nope'" in fields["eligibility.all[0].segment"][0]
    assert "cannot be evaluated at decision time" in fields["eligibility.all[1]"][0]
    assert "eligibility.all[2].value" in fields
    assert set(fields) >= {"ends_at", "cap_day", "weight", "rank_by"}
    offer(
        tenant_a,
        "pro_deal",
        eligibility={"segment": "pro"},
        cap_day=2,
        ends_at="2030-01-01T00:00:00Z",
    )
    changed = services.offer_update(offer=services.Offer.objects.get(key="pro_deal"), actor=None,
                                    data={"enabled": False})  # fmt: skip
    assert changed.ends_at is not None and changed.ends_at.year == 2030 and not changed.enabled
    with pytest.raises(ValidationFailed) as bad:  # a schema change may not break an offer
        services.placement_update(
            placement=services.Placement.objects.get(key="home_hero"),
            actor=None, data={"content_schema": {**HERO_SCHEMA, "required": ["image"]}},
        )  # fmt: skip
    assert "offer pro_deal would break it" in bad.value.fields["content_schema"][0]
    with pytest.raises(Conflict) as busy:
        services.placement_delete(
            placement=services.Placement.objects.get(key="home_hero"), actor=None
        )
    assert busy.value.code == "placement_has_offers"
    # the API speaks the same errors
    api = tenant_a.api()
    response = api.post(
        "/api/v1/offers/",
        {"key": "x1", "name": "X", "placement": "nowhere", "content": {}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["detail"]["fields"]["placement"]
    listed = api.get("/api/v1/placements/").json()
    assert listed["count"] == 1 and listed["results"][0]["offers"] == ["pro_deal"]
    assert tenant_a.api("analyst").post("/api/v1/placements/", {}).status_code == 403


@pytest.mark.django_db
def test_the_answer_for_known_and_unknown_visitors(tenant_a: Tenant, client: Client) -> None:
    people(client, tenant_a)
    segment_create(workspace=tenant_a.workspace, name="Pro", rule={"trait": "plan", "op": "eq",
                   "value": "pro"}, publish=True)  # fmt: skip
    hero(tenant_a)
    offer(tenant_a, "pro_fr", priority=10,
          eligibility={"all": [{"segment": "pro"}, {"trait": "country", "op": "eq",
                                                   "value": "FR"}]})  # fmt: skip
    offer(
        tenant_a,
        "sale_page",
        priority=5,
        eligibility={"context": "page.url", "op": "contains", "value": "/sale"},
    )
    offer(tenant_a, "ended", priority=50, ends_at=(timezone.now() - timedelta(days=1)).isoformat())
    offer(tenant_a, "off", priority=60, enabled=False)
    site = server_client(tenant_a)

    ann = decide(site, userId="ann", context={"page": {"url": "https://shop.test/sale"}},
                 explain=True)  # fmt: skip
    assert ann["placements"]["home_hero"] == {
        "offer": "pro_fr", "content": {"title": "pro_fr"},
        "reason": "offer pro_fr: eligible, priority 10",
    }  # fmt: skip
    assert ann["segments"] == ["pro"] and ann["degraded"] is False
    assert ann["traits"]["plan"] == "pro" and ann["traits"]["email"] == "ann@example.com"
    assert ann["profile_id"] == Identity.objects.get(type="user_id", value="ann").profile_id
    assert len(ann["request_id"]) == 32
    outcomes = {o["offer"]: o for o in ann["explain"]["placements"]["home_hero"]}
    assert outcomes["pro_fr"]["outcome"] == "chosen"
    assert outcomes["sale_page"]["outcome"] == "outranked"
    assert outcomes["ended"]["outcome"] == "ended" and outcomes["off"]["outcome"] == "disabled"

    cat = decide(site, userId="cat", context={"page": {"url": "https://shop.test/sale"}},
                 explain=True)  # fmt: skip
    assert cat["placements"]["home_hero"]["offer"] == "sale_page"
    failed = {o["offer"]: o for o in cat["explain"]["placements"]["home_hero"]}["pro_fr"]
    assert failed == {"offer": "pro_fr", "outcome": "not eligible", "path": "eligibility.all[1]",
                      "detail": "country is 'FR'"}  # fmt: skip

    bob = decide(site, userId="bob", context={"page": {"url": "https://shop.test/"}})
    assert bob["placements"]["home_hero"] == {
        "offer": None, "content": {"title": "Welcome"}, "reason": "default: no eligible offer"
    }  # fmt: skip
    # the anonymous id of a known person finds the same profile
    assert decide(site, anonymousId="a-ann")["profile_id"] == ann["profile_id"]
    stranger = decide(site, anonymousId=str(uuid.uuid4()), traits={"plan": "pro"})
    assert stranger["profile_id"] is None and stranger["traits"] == {}
    assert stranger["placements"]["home_hero"]["reason"] == "default: unknown visitor"
    # GET for simple cases, unknown placements said so, bad input a clear 400
    got = site.get("/v1/decide/?userId=ann&placements=home_hero,nowhere&url=/sale").json()
    assert got["placements"]["home_hero"]["offer"] == "pro_fr"
    assert got["placements"]["nowhere"]["reason"] == "unknown placement"
    bad = site.post("/v1/decide", data=b'{"placements": "x", "userId": {"a": 1}}',
                    content_type="application/json")  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    assert site.post("/v1/decide", data=b"{", content_type="application/json").status_code == 400
    assert Client().post("/v1/decide", b"{}", content_type="application/json").status_code == 401
    nobody = Client(HTTP_AUTHORIZATION="Bearer sk_not_a_key")
    refused = nobody.post("/v1/decide", b"{}", content_type="application/json")
    assert refused.json()["error"]["code"] == "invalid_server_key"


@pytest.mark.django_db
def test_frequency_caps_count_recorded_impressions(tenant_a: Tenant, client: Client) -> None:
    people(client, tenant_a)
    hero(tenant_a)
    offer(tenant_a, "welcome_back", priority=5, cap_day=2)
    offer(tenant_a, "newsletter", priority=1)
    site = server_client(tenant_a)
    from profiles.pipeline import queue

    for _ in range(2):
        shown = decide(site, userId="bob", record=True)
        assert shown["placements"]["home_hero"]["offer"] == "welcome_back"
        while queue.drain(batch_size=500)[1]:
            pass
    after = decide(site, userId="bob", explain=True)
    assert after["placements"]["home_hero"]["offer"] == "newsletter"
    capped = after["explain"]["placements"]["home_hero"][0]
    assert capped == {"offer": "welcome_back", "outcome": "capped",
                      "detail": "seen 2 times, at most 2 a day"}  # fmt: skip
    # impressions a site records itself (Offer Viewed through the collector) count the same
    send_events(client, tenant_a, {"type": "track", "userId": "cat", "event": "Offer Viewed",
                                   "properties": {"offer_id": "welcome_back"}},
                {"type": "track", "userId": "cat", "event": "Offer Viewed",
                 "properties": {"offer_id": "welcome_back"}})  # fmt: skip
    assert decide(site, userId="cat")["placements"]["home_hero"]["offer"] == "newsletter"
    cat = Identity.objects.get(type="user_id", value="cat").profile_id
    caps = DecisionRecord.objects.get(profile_id=cat).caps
    assert next(iter(caps.values()))["n"] == 2


def running_experiment(tenant: Tenant, **extra: Any) -> Any:
    experiments.metric_create(workspace=tenant.workspace, actor=None, data={
        "key": "purchase", "name": "Purchase", "kind": "conversion",
        "event": "Order Completed", "window_days": 7})  # fmt: skip
    made = experiments.experiment_create(
        workspace=tenant.workspace, actor=None,
        data={"key": "hero_test", "name": "Hero test", "primary_metric": "purchase",
              "variants": [{"key": "control", "weight": 1, "payload": {"color": "grey"}},
                           {"key": "bold", "weight": 1, "payload": {"color": "red"}}], **extra},
    )  # fmt: skip
    return experiments.experiment_start(experiment=made, actor=None)


@pytest.mark.django_db(transaction=True)
def test_experiments_expose_once_and_stay_sticky(tenant_a: Tenant) -> None:
    client = Client()
    people(client, tenant_a)
    experiment = running_experiment(tenant_a)
    site = server_client(tenant_a)

    def ask(_: int) -> dict[str, Any]:
        try:
            return decide(site, userId="ann", experiments=["hero_test"])
        finally:
            close_old_connections()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(16)))
    variants = {a["experiments"]["hero_test"]["variant"] for a in answers}
    assert len(variants) == 1
    ann = answers[0]["profile_id"]
    assert Exposure.objects.filter(experiment=experiment, profile_id=ann).count() == 1
    assert DecisionRecord.objects.get(profile_id=ann).exposures == {
        str(experiment.pk): variants.pop()
    }
    # an anonymous visitor: bucketed by its anonymous id, the exposure recorded once its
    # Experiment Viewed event made its profile, the same variant ever after (also once it
    # logs in and merges)
    visitor = str(uuid.uuid4())
    first = decide(site, anonymousId=visitor, experiments=["hero_test"])["experiments"]
    from profiles.pipeline import queue

    while queue.drain(batch_size=500)[1]:
        pass
    profile_id = Identity.objects.get(type="anonymous_id", value=visitor).profile_id
    kept = Exposure.objects.get(experiment=experiment, profile_id=profile_id)
    assert kept.variant == first["hero_test"]["variant"]
    again = decide(site, anonymousId=visitor, experiments=["hero_test", "nope"])["experiments"]
    assert again["hero_test"] == first["hero_test"] and again["nope"]["variant"] is None
    send_events(client, tenant_a, {"type": "identify", "anonymousId": visitor, "userId": "dan"})
    logged_in = decide(site, userId="dan", experiments=["hero_test"])["experiments"]
    assert logged_in["hero_test"] == first["hero_test"]
    # the decision API and the experiments service bucket a profile the same way
    bob = Identity.objects.get(type="user_id", value="bob").profile_id
    expected = experiments.assign(experiment=experiment, profile_id=bob, record=False)
    assert expected is not None
    served = decide(site, userId="bob", experiments=["hero_test"])["experiments"]["hero_test"]
    assert served["variant"] == expected.variant
    # a shipped experiment serves its winner to everyone, exposing nobody new
    experiments.experiment_ship(experiment=experiment, actor=None, variant="bold", force=True)
    shipped = decide(site, userId="cat", experiments=["hero_test"])["experiments"]
    assert shipped["hero_test"] == {"variant": "bold", "payload": {"color": "red"}}


@pytest.mark.django_db
def test_no_personalisation_consent_means_defaults(tenant_a: Tenant, client: Client) -> None:
    people(client, tenant_a, personalise=False)
    hero(tenant_a)
    offer(tenant_a, "everyone")
    running_experiment(tenant_a, personalised=True)
    site = server_client(tenant_a)
    bob = decide(site, userId="bob", experiments=["hero_test"])
    assert bob["placements"]["home_hero"]["reason"] == "default: no personalisation consent"
    assert bob["experiments"]["hero_test"]["variant"] is None
    assert not Exposure.objects.exists()
    ann = Identity.objects.get(type="user_id", value="ann").profile_id
    consent_record(workspace=tenant_a.workspace, profile_id=ann, purpose="personalization",
                   status="granted")  # fmt: skip
    granted = decide(site, userId="ann", experiments=["hero_test"])
    assert granted["placements"]["home_hero"]["offer"] == "everyone"
    assert granted["experiments"]["hero_test"]["variant"] in ("control", "bold")


@pytest.mark.django_db
def test_browser_mode(tenant_a: Tenant, client: Client, settings: Any) -> None:
    people(client, tenant_a)
    hero(tenant_a)
    tenant_a.workspace.settings = {**(tenant_a.workspace.settings or {}),
                                   "decide_browser_traits": ["plan"]}  # fmt: skip
    tenant_a.workspace.save()
    browser = Client(HTTP_ORIGIN="https://shop.example.com")
    body = orjson.dumps({"writeKey": tenant_a.write_key, "userId": "ann"})
    refused = browser.post("/v1/decide", data=body, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origins_required"
    assert "Access-Control-Allow-Origin" not in refused
    tenant_a.source.allowed_origins = ["https://shop.example.com"]
    tenant_a.source.save()
    from profiles.collector import keys

    keys.forget_all()
    answer = browser.post("/v1/decide", data=body, content_type="application/json")
    assert answer.status_code == 200
    assert answer["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert answer.json()["traits"] == {"plan": "pro"}  # email is not on the allowlist
    elsewhere = Client(HTTP_ORIGIN="https://evil.example.org").post(
        "/v1/decide", data=body, content_type="application/json"
    )
    assert elsewhere.status_code == 403 and "Access-Control-Allow-Origin" not in elsewhere
    preflight = browser.options("/v1/decide", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert preflight.status_code == 204
    settings.CDP_DECIDE_BROWSER_RATE = 3
    codes = [
        browser.post("/v1/decide", data=body, content_type="application/json").status_code
        for _ in range(6)
    ]
    assert 429 in codes and codes[0] == 200


@pytest.mark.django_db(transaction=True)
def test_degraded_when_postgres_is_slow_or_down(tenant_a: Tenant) -> None:
    people(Client(), tenant_a)
    hero(tenant_a)
    offer(tenant_a, "everyone")
    site = server_client(tenant_a)
    assert decide(site, userId="ann")["placements"]["home_hero"]["offer"] == "everyone"
    default = {"offer": None, "content": {"title": "Welcome"},
               "reason": "default: store unavailable"}  # fmt: skip
    dsn = connection.get_connection_params()
    with psycopg.connect(host=dsn.get("host"), port=dsn.get("port"), user=dsn.get("user"),
                         dbname=connection.settings_dict["NAME"]) as other:  # fmt: skip
        other.execute("SET lock_timeout = '10s'")
        # another session holds the table the read needs: it waits past its time budget
        other.execute("LOCK TABLE activation_decisionstate IN ACCESS EXCLUSIVE MODE")
        slow = decide(site, userId="ann", experiments=["any"])
        other.rollback()
    assert slow["degraded"] is True and slow["placements"]["home_hero"] == default
    assert slow["experiments"]["any"]["variant"] is None
    # Postgres unreachable: the same 200 with the defaults this process knows
    before = {k: connection.settings_dict.get(k) for k in ("PORT", "HOST")}
    connection.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    connection.settings_dict.update(PORT=closed_port, HOST="127.0.0.1")
    try:
        down = decide(site, userId="ann")
    finally:
        connection.close()
        connection.settings_dict.update(before)
    assert down["degraded"] is True and down["placements"]["home_hero"] == default
    assert decide(site, userId="ann")["degraded"] is False  # and back as soon as it answers


@pytest.mark.django_db
def test_records_follow_the_pipeline_and_privacy(tenant_a: Tenant, client: Client) -> None:
    people(client, tenant_a)
    ann = Identity.objects.get(type="user_id", value="ann").profile_id
    record = DecisionRecord.objects.get(profile_id=ann)
    assert record.traits["plan"] == "pro" and record.columns["event_count"] == 1
    assert "_updated" not in record.computed  # bookkeeping of computed traits, not a trait
    send_events(client, tenant_a, {"type": "identify", "userId": "ann",
                                   "traits": {"plan": "team"}})  # fmt: skip
    assert DecisionRecord.objects.get(profile_id=ann).traits["plan"] == "team"
    # a record lost (or never built) is built by the first decision that needs it
    DecisionRecord.objects.filter(profile_id=ann).delete()
    site = server_client(tenant_a)
    assert decide(site, userId="ann")["traits"]["plan"] == "team"
    assert DecisionRecord.objects.filter(profile_id=ann).exists()
    # a segment published after the events: its members are in the answer at once
    segment_create(
        workspace=tenant_a.workspace,
        name="France",
        rule={"trait": "country", "op": "eq", "value": "FR"},
        publish=True,
    )
    assert decide(site, userId="ann")["segments"] == ["france"]
    subject = Subject(workspace_id=tenant_a.workspace.pk, profile_ids=[ann], request_id=None)
    exported = activation_privacy.export(subject)
    assert exported["decision_record"][0]["traits"]["plan"] == "team"
    assert activation_privacy.delete(subject)["decision_records"] == 1
    assert not DecisionRecord.objects.filter(profile_id=ann).exists()
    assert Profile.objects.filter(pk=ann).exists()  # only the record went here


@pytest.mark.django_db
def test_every_process_sees_a_change_at_its_next_decision(tenant_a: Tenant, client: Client) -> None:
    people(client, tenant_a)
    hero(tenant_a)
    offer(tenant_a, "everyone")
    site = server_client(tenant_a)
    assert decide(site, userId="ann")["placements"]["home_hero"]["offer"] == "everyone"
    # another process changed the offer: this one's cache is not told, only the version moves
    services.Offer.objects.filter(key="everyone").update(enabled=False)
    assert decide(site, userId="ann")["placements"]["home_hero"]["offer"] == "everyone"
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE activation_decisionstate SET version = version + 1 WHERE workspace_id = %s",
            [tenant_a.workspace.pk],
        )
    assert decide(site, userId="ann")["placements"]["home_hero"]["offer"] is None

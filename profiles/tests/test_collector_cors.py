"""Browsers call the collector from other origins: preflights are answered at once (no
database), answers carry the CORS headers, and a source may restrict itself to a list of
origins."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from django.test import Client

from cdp.models import Role
from profiles.collector import cors
from profiles.models import Event
from tests.fixtures import Tenant

SHOP = "https://shop.example.com"
PREFLIGHT = {
    "Origin": SHOP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


def track(tenant: Tenant, path: str = "/v1/t", origin: str | None = SHOP, **extra: Any) -> Any:
    """A call as analytics.js 2.0 makes it: text/plain JSON with the write key in the body."""
    body = {"type": "track", "event": "Viewed", "anonymousId": "a-1", "writeKey": tenant.write_key}
    headers = {"Origin": origin} if origin else {}
    return Client().post(
        path, orjson.dumps({**body, **extra}), content_type="text/plain", headers=headers
    )


@pytest.mark.parametrize("path", ["/v1/t", "/v1/track", "/v1/batch/", "/v1/i", "/v1/b"])
def test_preflight_is_answered_without_the_database(
    path: str, db: Any, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        answer = Client().options(path, headers=PREFLIGHT)
    assert answer.status_code == 204
    assert answer["Access-Control-Allow-Origin"] == SHOP
    assert answer["Access-Control-Allow-Credentials"] == "true"
    assert answer["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert set(answer["Access-Control-Allow-Methods"].split(", ")) >= {"POST", "OPTIONS"}
    assert int(answer["Access-Control-Max-Age"]) >= 7200
    assert "Origin" in answer["Vary"]


def test_a_preflight_without_requested_headers_allows_the_sdks_headers() -> None:
    answer = Client().options("/v1/track", headers={"Origin": SHOP})
    assert "Authorization" in answer["Access-Control-Allow-Headers"]
    assert "Content-Type" in answer["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/i", "identify"),
        ("/v1/t", "track"),
        ("/v1/p", "page"),
        ("/v1/s", "screen"),
        ("/v1/g", "group"),
        ("/v1/a", "alias"),
    ],
)
def test_one_letter_paths_take_text_plain(tenant_a: Tenant, path: str, kind: str) -> None:
    extra = {"groupId": "g-1", "previousId": "a-0", "userId": "u-1", "name": "Home"}
    answer = track(tenant_a, path, **extra)
    assert answer.status_code == 200, answer.content
    assert answer["Access-Control-Allow-Origin"] == SHOP
    assert Event.objects.get().type == kind


def test_any_origin_by_default_and_server_calls_without_origin(tenant_a: Tenant) -> None:
    assert track(tenant_a, origin="http://localhost:3000").status_code == 200
    server = track(tenant_a, origin=None, messageId="m-server")
    assert server.status_code == 200 and server["Access-Control-Allow-Origin"] == "*"


def test_a_restricted_source_refuses_other_origins(tenant_a: Tenant) -> None:
    owner = tenant_a.api(Role.OWNER)
    url = f"/api/v1/sources/{tenant_a.source.pk}/"
    saved = owner.patch(
        url,
        {"allowed_origins": ["https://Shop.Example.com/", "https://*.example.org", SHOP]},
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content
    assert saved.json()["allowed_origins"] == [SHOP, "https://*.example.org"]

    assert track(tenant_a, messageId="m-1").status_code == 200
    assert track(tenant_a, origin="https://app.example.org", messageId="m-2").status_code == 200
    refused = track(tenant_a, origin="https://evil.example.net", messageId="m-3")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused  # the page never reads it
    # a wildcard is for subdomains, not the domain itself; server SDKs are not concerned
    assert track(tenant_a, origin="https://example.org", messageId="m-4").status_code == 403
    assert track(tenant_a, origin=None, messageId="m-5").status_code == 200
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-1", "m-2", "m-5"]


def test_bad_origins_are_named_and_nothing_changes(tenant_a: Tenant) -> None:
    owner = tenant_a.api(Role.OWNER)
    url = f"/api/v1/sources/{tenant_a.source.pk}/"
    bad = owner.patch(
        url,
        {"allowed_origins": [SHOP, "shop.example.com", "https://x.com/path", "ftp://x.com"]},
        content_type="application/json",
    )
    assert bad.status_code == 400
    fields = bad.json()["error"]["detail"]["fields"]
    assert list(fields) == ["allowed_origins[1]", "allowed_origins[2]", "allowed_origins[3]"]
    assert "no path" in fields["allowed_origins[2]"][0]
    assert owner.get(url).json()["allowed_origins"] == []


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("https://shop.example.com", ["https://shop.example.com"], True),
        ("https://shop.example.com:443", ["https://shop.example.com"], True),
        ("http://shop.example.com", ["https://shop.example.com"], False),
        ("https://a.b.example.com", ["https://*.example.com"], True),
        ("https://badexample.com", ["https://*.example.com"], False),
        ("http://localhost:8080", ["http://localhost:8080"], True),
        ("http://localhost:8081", ["http://localhost:8080"], False),
        ("null", ["https://shop.example.com"], False),
    ],
)
def test_origin_matching(origin: str, allowed: list[str], expected: bool) -> None:
    assert cors.origin_allowed(origin, allowed) is expected

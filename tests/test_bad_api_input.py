"""No 5xx from bad input on the management API: one JSON parser (depth limit, NUL rule) for
every body, ids in paths are digits, numbers in query strings are ASCII and in range, and
numbers in bodies fit their database columns — each answered 400 or 404 naming the input."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.models import Role
from tests.fixtures import Tenant

LEAF = '{"trait": "plan", "op": "eq", "value": "pro"}'


def deep_text(levels: int) -> str:
    """A rule nested `levels` times in "not", as JSON text (written by hand: the standard
    library's writer itself stops at Python's recursion limit)."""
    return '{"not": ' * levels + LEAF + "}" * levels


def deep(levels: int) -> Any:
    import json

    return json.loads(deep_text(levels))


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/v1/segments/preview/", '{"rule": ' + deep_text(10_000) + "}"),
        ("/api/v1/segments/preview/", '{"rule": ' + deep_text(200) + "}"),
        ("/api/v1/segments/", '{"name": "Deep", "rule": ' + deep_text(10_000) + "}"),
        ("/api/v1/consent/events/", '{"identifier": "email:a@b.co", "x": ' + deep_text(500) + "}"),
    ],
)
def test_deeply_nested_bodies_are_refused_with_their_path(
    tenant_a: Tenant, path: str, raw: str
) -> None:
    answer = tenant_a.api().post(path, raw, content_type="application/json")
    assert answer.status_code == 400, answer.content[:300]
    error = answer.json()["error"]
    if error["code"] == "validation_failed":
        path_of = next(iter(error["detail"]["fields"]))
        assert "nested deeper than 64 levels" in error["message"] and ".not" in path_of
    else:  # too deep even for the JSON reader itself
        assert error["code"] == "parse_error"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("patch", "/api/v1/identity/rules/", {"blocklist": ["ok", "bad\x00"]}, "blocklist[1]"),
        (
            "post",
            "/api/v1/computed-traits/",
            {"key": "k", "name": "K", "aggregation": "count", "event": "Bought\x00"},
            "event",
        ),
        ("post", "/api/v1/segments/", {"name": "N\x00", "rule": deep(1)}, "name"),
        ("post", "/api/v1/consent/purposes/", {"key\x00": "x"}, "key\\x00"),
    ],
)
def test_a_nul_anywhere_in_a_body_is_a_400_naming_it(
    tenant_a: Tenant, method: str, path: str, body: Any, field: str
) -> None:
    answer = getattr(tenant_a.api(), method)(path, body, content_type="application/json")
    assert answer.status_code == 400, answer.content[:300]
    error = answer.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["detail"]["fields"] == {
        field: ["contains a NUL character (\\x00), which is never valid"]
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/events/abc/"),
        ("get", "/api/v1/failed-events/abc/"),
        ("post", "/api/v1/failed-events/abc/replay/"),
        ("get", "/api/v1/segments/1e3/"),
        ("get", "/api/v1/profiles/99999999999999999999999/"),
        ("get", "/api/v1/privacy/requests/%C2%B9/"),
    ],
)
def test_ids_in_paths_are_digits_or_404(tenant_a: Tenant, method: str, path: str) -> None:
    answer = getattr(tenant_a.api(), method)(path)
    assert answer.status_code == 404, answer.content[:300]
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/segments/?owner=%C2%B9", "owner"),
        ("/api/v1/events/?source=%C2%B9", "source"),
        ("/api/v1/events/?source=99999999999999999999999", "source"),
    ],
)
def test_numbers_in_query_strings_are_ascii_and_in_range(
    tenant_a: Tenant, path: str, field: str
) -> None:
    answer = tenant_a.api(Role.OWNER).get(path)
    assert answer.status_code == 400, answer.content[:300]
    assert list(answer.json()["error"]["detail"]["fields"]) == [field]


def test_numbers_in_bodies_fit_their_columns(tenant_a: Tenant) -> None:
    url = f"/api/v1/sources/{tenant_a.source.pk}/"
    answer = tenant_a.api().patch(
        url, {"rate_limit_per_second": 1.3e19}, content_type="application/json"
    )
    assert answer.status_code == 400, answer.content[:300]
    assert list(answer.json()["error"]["detail"]["fields"]) == ["rate_limit_per_second"]
    assert tenant_a.api().get(url).json()["rate_limit_per_second"] is None

"""A NUL character in a query or form parameter gets a 400 naming the parameter on every path
(Postgres cannot store or compare it), never a server error, and nothing is written."""

from __future__ import annotations

import pytest

from cdp.models import Role
from consent.models import PrivacyRequest
from tests.fixtures import Tenant

API_URLS = [
    "/api/v1/segments/?q=a%00b",
    "/api/v1/segments/?tag=x%00",
    "/api/v1/profiles/?q=a%00b",
    "/api/v1/events/?event=Order%00",
    "/api/v1/consent/events/?purpose=x%00",
    "/api/v1/privacy/requests/?status=%00",
]
PAGE_URLS = [
    "/segments/?q=a%00b",
    "/segments/?tag=x%00",
    "/profiles/?q=a%00",
    "/privacy/?status=%00",
    "/privacy/audit/?kind=%00",
]


@pytest.mark.parametrize("url", API_URLS)
def test_api_answers_400_naming_the_parameter(tenant_a: Tenant, url: str) -> None:
    answer = tenant_a.api(Role.OWNER).get(url)
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    name = url.split("?", 1)[1].split("=", 1)[0]
    message = "contains a NUL character (\\x00), which is never valid"
    assert error["code"] == "validation_failed"
    assert error["detail"] == {"fields": {name: [message]}}
    assert error["message"] == f"{name}: {message}"


@pytest.mark.parametrize("url", PAGE_URLS)
def test_pages_answer_400_with_the_reason(tenant_a: Tenant, url: str) -> None:
    answer = tenant_a.session(Role.OWNER).get(url)
    assert answer.status_code == 400
    html = answer.content.decode()
    assert "Bad request" in html and "contains a NUL character" in html
    assert 'class="sidebar"' in html  # the usual page, with its navigation


def test_forms_and_parameter_names_are_checked_too(tenant_a: Tenant) -> None:
    session = tenant_a.session(Role.PRIVACY_OFFICER)
    answer = session.post("/privacy/", {"type": "delete", "identifier": "email:a\x00@b.co"})
    assert answer.status_code == 400 and "identifier: contains a NUL" in answer.content.decode()
    assert not PrivacyRequest.objects.exists()
    named = tenant_a.api(Role.OWNER).get("/api/v1/segments/?q%00=x")
    assert named.status_code == 400
    assert list(named.json()["error"]["detail"]["fields"]) == ["q\\x00"]
    # JSON bodies are not form parameters: their own validation answers
    rule = {"trait": "plan", "op": "eq", "value": "a\x00"}
    preview = tenant_a.api(Role.OWNER).post(
        "/api/v1/segments/preview/", {"rule": rule}, content_type="application/json"
    )
    assert preview.status_code == 400
    assert list(preview.json()["error"]["detail"]["fields"]) == ["rule.value"]  # the node

"""Guessing passwords or API tokens is throttled: after the failure limit for a username, or
from one address, sign-in is paused (429, the lockout page, audited) until the cool-off ends or
an admin lifts it; failed token authentications from one address get 429 too."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from cdp.models import AuditLog, Role
from tests.fixtures import PASSWORD, Tenant

LIMIT = 4


@pytest.fixture(autouse=True)
def _small_limits(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.CDP_TOKEN_FAILURE_LIMIT = LIMIT


def sign_in(username: str, password: str, ip: str = "198.51.100.7") -> Any:
    return Client(REMOTE_ADDR=ip).post("/login/", {"username": username, "password": password})


def test_wrong_passwords_pause_the_account_until_unlocked(tenant_a: Tenant) -> None:
    user = tenant_a.users[Role.MARKETER].username
    for _ in range(LIMIT - 1):
        answer = sign_in(user, "wrong")
        assert answer.status_code == 200 and "didn't match" in answer.content.decode()
    assert sign_in(user, "wrong").status_code == 429  # the limit reached: paused
    # the right password does not help now, from this address or another one
    paused = sign_in(user, PASSWORD)
    assert paused.status_code == 429 and 'id="locked"' in paused.content.decode()
    assert sign_in(user, PASSWORD, ip="203.0.113.9").status_code == 429
    lockouts = AuditLog.objects.filter(workspace=tenant_a.workspace, action="auth.lockout")
    assert lockouts.exists() and lockouts.first().detail["username"] == user  # type: ignore[union-attr]

    out = StringIO()
    call_command("cdp_unlock", username=user, ip="198.51.100.7", stdout=out)
    assert "lifted" in out.getvalue()
    assert AuditLog.objects.filter(action="auth.unlock").count() == 1
    signed_in = sign_in(user, PASSWORD)
    assert signed_in.status_code == 302


def test_one_address_guessing_many_usernames_is_paused(tenant_a: Tenant) -> None:
    for n in range(LIMIT):
        sign_in(f"nobody-{n}@example.com", "wrong", ip="192.0.2.50")
    owner = tenant_a.users[Role.OWNER].username
    assert sign_in(owner, PASSWORD, ip="192.0.2.50").status_code == 429
    assert sign_in(owner, PASSWORD, ip="192.0.2.51").status_code == 302  # others unaffected


def test_a_success_resets_the_count(tenant_a: Tenant) -> None:
    user = tenant_a.users[Role.ANALYST].username
    for _ in range(2):
        for _ in range(LIMIT - 1):
            sign_in(user, "wrong")
        assert sign_in(user, PASSWORD).status_code == 302


def test_guessing_api_tokens_is_throttled_per_address(tenant_a: Tenant) -> None:
    guesser = Client(REMOTE_ADDR="192.0.2.77")
    for n in range(LIMIT):
        bad = guesser.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token tok_guess{n}")
        assert bad.status_code == 401
    token = tenant_a.tokens[Role.OWNER]
    throttled = guesser.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert throttled.json()["error"]["code"] == "throttled"
    other = Client(REMOTE_ADDR="192.0.2.78")
    assert other.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    call_command("cdp_unlock", ip="192.0.2.77", stdout=StringIO())
    assert guesser.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200

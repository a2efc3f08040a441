from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from cdp.env import ImproperlyConfiguredEnv, env_bool, env_int
from cdp.models import ApiToken, Membership
from profiles.models import Source
from tests.fixtures import post_collector


def bootstrap(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("cdp_bootstrap", *args, stdout=out)
    return json.loads(out.getvalue())


def test_bootstrap_is_idempotent_and_its_keys_work(db: Any) -> None:
    first = bootstrap("--workspace", "Acme", "--email", "ops@acme.test")
    assert first["workspace"]["name"] == "Acme"
    assert first["admin"]["username"] == "ops@acme.test"
    assert len(first["admin"]["password"]) >= 12
    second = bootstrap("--workspace", "Acme", "--email", "ops@acme.test")
    # secrets stored as digests are shown by the run that made them only
    assert "password" not in second["admin"]
    assert "api_token" not in second and "server_key" not in second
    assert first["api_token"].startswith("tok_") and first["server_key"].startswith("sk_")
    for key in ("workspace", "write_key"):
        assert first[key] == second[key]
    assert Source.objects.count() == 1
    assert ApiToken.objects.count() == 1
    assert Membership.objects.get().role == "owner"

    signed_in = Client().post(
        "/login/", {"username": "ops@acme.test", "password": first["admin"]["password"]}
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"
    response = post_collector(
        Client(),
        "/v1/track",
        {"userId": "u", "event": "Booted"},
        write_key=first["write_key"],
    )
    assert response.status_code == 200
    me = Client(HTTP_AUTHORIZATION=f"Token {first['api_token']}").get("/api/v1/me/")
    assert me.json()["workspace"]["id"] == first["workspace"]["id"]


def test_bootstrap_of_a_second_workspace_keeps_them_apart(db: Any) -> None:
    a = bootstrap("--workspace", "A")
    b = bootstrap("--workspace", "B")
    assert a["workspace"]["id"] != b["workspace"]["id"]
    assert a["write_key"] != b["write_key"]
    assert a["api_token"] != b["api_token"]


def test_env_helpers_fail_loudly(monkeypatch: Any) -> None:
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_FLAG"):
        env_bool("X_FLAG")
    monkeypatch.setenv("X_NUM", "12k")
    with pytest.raises(ImproperlyConfiguredEnv, match="expected an integer"):
        env_int("X_NUM", 1)
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG") is True

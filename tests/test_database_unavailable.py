"""While Postgres does not answer, every path says so — 503 with Retry-After (the SDKs back off
and resend; nothing is lost because nothing was acknowledged) — and once it answers again no
request fails on a connection the server had dropped (persistent connections are health
checked before reuse)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import close_old_connections, connection

from tests.fixtures import Tenant, post_collector, terminate_our_backend

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def connection_settings(**changes: Any) -> Iterator[None]:
    before = {k: connection.settings_dict.get(k) for k in changes}
    connection.close()
    connection.settings_dict.update(changes)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(before)


def served(client: Any, path: str) -> Any:
    """A GET handled as a server handles it: Django's request_started/finished hooks check the
    persistent connection around the request (its test client turns them off)."""
    close_old_connections()
    try:
        return client.get(path)
    finally:
        close_old_connections()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dropped_connection_costs_no_request(tenant_a: Tenant) -> None:
    api = tenant_a.api()
    with connection_settings(CONN_MAX_AGE=600, CONN_HEALTH_CHECKS=True):
        assert served(api, "/api/v1/me/").status_code == 200
        terminate_our_backend()
        assert served(api, "/api/v1/me/").status_code == 200  # a fresh connection, no error


def test_without_health_checks_it_would_be_a_503_not_a_500(tenant_a: Tenant) -> None:
    api = tenant_a.api()
    with connection_settings(CONN_MAX_AGE=600, CONN_HEALTH_CHECKS=False):
        assert served(api, "/api/v1/me/").status_code == 200
        terminate_our_backend()
        failed = served(api, "/api/v1/me/")
        assert failed.status_code == 503, failed.content
        assert failed.json()["error"]["code"] == "database_unavailable"
        assert served(api, "/api/v1/me/").status_code == 200  # and the next one recovers


def test_postgres_down_is_a_503_with_retry_after_everywhere(tenant_a: Tenant) -> None:
    session = tenant_a.session()
    with connection_settings(PORT=free_port(), HOST="127.0.0.1"):
        collector = post_collector(
            tenant_a.api(),
            "/v1/track",
            {"userId": "u", "event": "While down"},
            write_key="WK_not_cached_yet",
        )
        assert collector.status_code == 503 and collector["Retry-After"] == "5"
        body = collector.json()["error"]
        assert body["code"] == "database_unavailable" and len(body["detail"]["request_id"]) == 16
        api = tenant_a.api().get("/api/v1/segments/")
        assert api.status_code == 503 and api["Retry-After"] == "5"
        page = session.get("/sources/")
        assert page.status_code == 503 and b"The database is not answering" in page.content
    assert tenant_a.api().get("/api/v1/me/").status_code == 200

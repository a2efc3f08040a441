"""The WSGI entry point (`cdp.wsgi.application`, what gunicorn serves) hands the collector's
ingest endpoints to a handler with a shorter middleware chain (profiles/collector/wsgi.py).
Whatever a request looks like, its answer is the one Django's full handler gives: status,
headers (security, CSP, CORS, Retry-After, request id) and body."""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from cdp.wsgi import application
from profiles.collector import wsgi as collector_wsgi
from profiles.models import Event
from tests.fixtures import Tenant

pytestmark = pytest.mark.django_db(transaction=True)

VARYING = {"X-Request-Id", "Date"}


def call(app: Any, method: str, path: str, **options: Any) -> tuple[str, dict[str, str], Any]:
    body: bytes = options.get("body", b"")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": options.get("query", ""),
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": options.get("host", "testserver"),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
    }
    for name, value in options.get("headers", {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, headers

    chunks = application_output(app, environ, start_response)
    headers = {k: v for k, v in answer["headers"] if k not in VARYING}
    text = b"".join(chunks)
    try:
        content: Any = json.loads(text)
        content.get("error", {}).get("detail", {}).pop("request_id", None)
    except (ValueError, AttributeError):
        content = text
    return answer["status"], headers, content


def application_output(app: Any, environ: dict[str, Any], start_response: Any) -> list[bytes]:
    response = app(environ, start_response)
    try:
        return list(response)
    finally:
        response.close()  # request_finished, as a WSGI server does
        connection.close()


def both(method: str, path: str, make_body: Any = None, **options: Any) -> tuple[Any, Any]:
    """The same request (a body made twice: fresh messageIds) through both handlers."""
    answers = []
    for app in (WSGIHandler(), application):
        body = make_body() if make_body else b""
        answers.append(call(app, method, path, body=body, **options))
    return answers[0], answers[1]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track() -> bytes:
    message = uuid.uuid4().hex
    return json.dumps({"event": "Viewed", "userId": "u1", "messageId": message}).encode()


def batch_with_a_bad_event() -> bytes:
    good = {"type": "track", "event": "Viewed", "userId": "u1", "messageId": uuid.uuid4().hex}
    bad = {"type": "track", "userId": "u1", "messageId": uuid.uuid4().hex}  # no event name
    return json.dumps({"batch": [good, bad]}).encode()


@pytest.mark.parametrize(
    ("method", "path", "make_body", "options"),
    [
        ("POST", "/v1/track", track, {"key": True}),
        ("POST", "/v1/t/", track, {"key": True}),
        ("POST", "/v1/batch", batch_with_a_bad_event, {"key": True}),
        ("POST", "/v1/track", lambda: b"{not json", {"key": True}),
        ("POST", "/v1/track", track, {}),  # no write key
        ("POST", "/v1/track", track, {"headers": auth("WK_nobody")}),
        ("GET", "/v1/track", None, {"key": True}),  # 405
        ("POST", "/v1/track", track, {"key": True, "host": "evil.example"}),  # host check
        ("OPTIONS", "/v1/batch", None, {"headers": {"Origin": "https://shop.example",
                                                    "Access-Control-Request-Method": "POST"}}),
        ("POST", "/v1/track", track, {"key": True, "headers": {"Origin": "https://shop.example"}}),
        ("POST", "/beacon/v1/batch", batch_with_a_bad_event, {"beacon": True}),
        ("POST", "/beacon/v1/batch", batch_with_a_bad_event, {"query": "writeKey=a%00b"}),
        ("POST", "/v1/track", track, {"key": True, "headers": {"X-Request-Id": "proxy-id-123"}}),
    ],
)  # fmt: skip
def test_the_fast_path_answers_as_django_does(
    tenant_a: Tenant, method: str, path: str, make_body: Any, options: dict[str, Any]
) -> None:
    headers = dict(options.get("headers", {}))
    if options.get("key"):
        headers.update(auth(tenant_a.write_key))
    query = options.get("query", "")
    if options.get("beacon"):
        query = f"writeKey={tenant_a.write_key}"
    django, fast = both(method, path, make_body, headers=headers, query=query,
                        host=options.get("host", "testserver"))  # fmt: skip
    assert fast == django


def test_a_proxys_request_id_comes_back(tenant_a: Tenant) -> None:
    headers = {**auth(tenant_a.write_key), "X-Request-Id": "proxy-id-123"}
    seen: dict[str, Any] = {}

    def start_response(status: str, answer: list[tuple[str, str]]) -> None:
        seen.update(answer)

    body = track()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/track", "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": headers["Authorization"],
        "HTTP_X_REQUEST_ID": "proxy-id-123",
    }  # fmt: skip
    environ["CONTENT_LENGTH"] = str(len(body))
    application_output(application, environ, start_response)
    assert seen["X-Request-Id"] == "proxy-id-123"
    assert "Content-Security-Policy" in seen and seen["X-Content-Type-Options"] == "nosniff"


def test_only_the_ingest_endpoints_take_the_fast_path(tenant_a: Tenant) -> None:
    routed = [pattern for pattern, _ in collector_wsgi.ROUTES.items()]
    assert len(routed) == 8
    # the SDK settings routes and everything else stay with Django
    status, _, _ = call(application, "GET", f"/v1/projects/{tenant_a.write_key}/settings")
    assert status.startswith("200")
    status, _, _ = call(application, "GET", "/healthz")
    assert status.startswith("200")


def test_events_sent_through_the_fast_path_are_stored(tenant_a: Tenant) -> None:
    for _ in range(3):
        status, _, content = call(
            application, "POST", "/v1/track", body=track(), headers=auth(tenant_a.write_key)
        )
        assert status.startswith("200") and content["accepted"] == 1
    assert Event.objects.filter(workspace=tenant_a.workspace).count() == 3


def test_the_chain_skips_only_what_the_collector_has_no_use_for() -> None:
    from django.conf import settings

    kept = collector_wsgi.middleware_paths()
    assert kept == [m for m in settings.MIDDLEWARE if m not in collector_wsgi.SKIPPED_MIDDLEWARE]
    for needed in (
        "django.middleware.security.SecurityMiddleware",
        "cdp.middleware.JsonErrorsForApiPaths",
        "cdp.middleware.ContentSecurityPolicy",
        "cdp.middleware.RejectNulInParameters",
    ):
        assert needed in kept

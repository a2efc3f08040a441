"""The Content-Security-Policy middleware builds a plain response's headers once: every
response must carry exactly what django-csp's own middleware would give it, whatever the
view changed (decorators, a nonce, its own header) and after the settings change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.decorators import csp_exempt, csp_replace, csp_update
from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from cdp.middleware import ContentSecurityPolicy


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def with_nonce(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"<script nonce='{request.csp_nonce}'></script>")  # type: ignore[attr-defined]


def own_header(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("ok")
    response[HEADER] = "default-src 'none'"
    return response


VIEWS: dict[str, Callable[[HttpRequest], Any]] = {
    "plain": plain,
    "nonce": with_nonce,
    "own header": own_header,
    "exempt": csp_exempt()(plain),
    "update": csp_update({"img-src": ["https://cdn.example"]})(plain),
    "replace": csp_replace({"script-src": ["'self'", "https://js.example"]})(plain),
    "not found": lambda request: HttpResponse("no", status=404),
}


def headers(middleware: type, view: Callable[[HttpRequest], Any], path: str = "/x") -> dict:
    request = RequestFactory().get(path)
    response = middleware(view)(request)
    # django-csp builds the directives from a set: their order is not fixed
    return {h: directives(response.get(h)) for h in (HEADER, HEADER_REPORT_ONLY)}


def directives(header: str | None) -> frozenset[str] | None:
    return None if header is None else frozenset(d.strip() for d in header.split(";"))


@pytest.mark.parametrize("name", list(VIEWS))
def test_every_response_gets_what_django_csp_gives_it(name: str) -> None:
    view = VIEWS[name]
    # twice: the first plain response is built by django-csp, later ones from what it kept
    for _ in range(2):
        for before in VIEWS.values():  # whatever came before
            headers(ContentSecurityPolicy, before)
        assert headers(ContentSecurityPolicy, view) == headers(CSPMiddleware, view), name
    assert "frame-ancestors 'none'" in headers(ContentSecurityPolicy, plain)[HEADER]


def test_a_view_with_its_own_header_first_does_not_become_the_policy() -> None:
    ContentSecurityPolicy._plain = None
    assert headers(ContentSecurityPolicy, own_header)[HEADER] == {"default-src 'none'"}
    assert headers(ContentSecurityPolicy, plain) == headers(CSPMiddleware, plain)


def test_a_nonce_asked_for_after_the_header_was_written_is_refused() -> None:
    from csp.exceptions import CSPNonceError

    for _ in range(2):
        request = RequestFactory().get("/x")
        ContentSecurityPolicy(plain)(request)
        with pytest.raises(CSPNonceError):
            str(request.csp_nonce)  # type: ignore[attr-defined]


def test_changed_settings_change_the_headers() -> None:
    headers(ContentSecurityPolicy, plain)
    policy = {"DIRECTIVES": {"default-src": ["'none'"]}, "EXCLUDE_URL_PREFIXES": ["/open/"]}
    with override_settings(
        CONTENT_SECURITY_POLICY=policy,
        CONTENT_SECURITY_POLICY_REPORT_ONLY={"DIRECTIVES": {"default-src": ["'self'"]}},
    ):
        for path in ("/x", "/open/x"):
            assert headers(ContentSecurityPolicy, plain, path) == headers(
                CSPMiddleware, plain, path
            )
        assert headers(ContentSecurityPolicy, plain)[HEADER] == {"default-src 'none'"}
        assert headers(ContentSecurityPolicy, plain, "/open/x")[HEADER] is None
    assert headers(ContentSecurityPolicy, plain) == headers(CSPMiddleware, plain)
    assert headers(ContentSecurityPolicy, plain)[HEADER_REPORT_ONLY] is None

"""The HTTP client the HTTP kinds share: one connection pool per process (httpx is
thread-safe), per-request timeouts, and transport failures classified for retries."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx

from activation.connectors.base import Outcome, http_outcome

_client: httpx.Client | None = None


def client() -> httpx.Client:
    global _client
    if _client is None:
        _client = httpx.Client(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=False,
            headers={"user-agent": "cdp-activation/1"},
        )
    return _client


def url_problem(url: Any) -> str | None:
    """Why `url` cannot be posted to (None: it can)."""
    if not isinstance(url, str) or not url.strip():
        return "required"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host name"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has an invalid port"
    return None


def display_url(url: str) -> str:
    """The URL without credentials or query string (which may carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def post(
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout: float,
    request: dict[str, Any],
    retry_after_default: float = 30.0,
    method: str = "POST",
) -> Outcome:
    try:
        answer = client().request(
            method, url, content=content, headers=headers, timeout=httpx.Timeout(timeout)
        )
    except httpx.TimeoutException:
        return Outcome.retry("timeout", f"no answer within {timeout:g} s", request=request)
    except httpx.ConnectError as exc:
        cause = exc.__context__ or exc.__cause__
        if isinstance(cause, ssl.SSLError) or "SSL" in str(exc) or "certificate" in str(exc):
            return Outcome.retry("tls_error", f"TLS handshake failed: {exc}", request=request)
        return Outcome.retry("connection_error", f"cannot connect: {exc}", request=request)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return Outcome.fail("invalid_url", f"invalid URL: {exc}", request=request)
    except httpx.TransportError as exc:
        return Outcome.retry("connection_error", f"{type(exc).__name__}: {exc}", request=request)
    return http_outcome(
        answer.status_code,
        answer.text,
        answer.headers,
        request,
        retry_after_default=retry_after_default,
    )

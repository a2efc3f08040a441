"""Cross-origin calls from browsers (analytics.js 2.0, RudderStack's JavaScript SDK) to the
collector and the SDKs' settings endpoints.

Write keys are public in web pages, so every origin may call by default; a source may keep
a list of allowed origins, checked when its write key is known (the real request, never the
preflight). Preflights are answered at once, from the request's headers alone: no database,
no cache look-up."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import wraps
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse

MAX_AGE_SECONDS = 86_400  # browsers cap it (Chromium: 2 h); one preflight per page session
ALLOWED_METHODS = "GET, POST, OPTIONS"
# what the SDKs send; a preflight asking for other headers gets them echoed (they carry no
# credential the collector reads but the write key)
DEFAULT_HEADERS = (
    "Authorization, Content-Type, AnonymousId, SentAt, X-Retry-Count, Rsa-Recovered, "
    "Rsa-Retry-Attempt, Rsa-Retry-Reason, Rsa-Since-First-Attempt, Rsa-Since-Last-Attempt"
)
MAX_ORIGINS = 50

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def normalise_origin(text: str) -> str:
    """`https://Shop.Example.com/` -> `https://shop.example.com`; `https://*.example.com`
    allows every subdomain of example.com. ValueError says what is wrong."""
    value = text.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} is not an origin: expected https://host or http://host:port")
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{text!r} is not an origin: only scheme, host and port (no path)")
    host, _, port = parts.netloc.lower().partition(":")
    if not _HOST.match(host) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"{text!r} is not an origin: bad host or port")
    default = {"http": "80", "https": "443"}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """Whether a browser's Origin header matches one of the allowed origins (a wildcard
    entry matches subdomains only: `https://*.example.com` allows `https://a.example.com`,
    not `https://example.com`)."""
    try:
        origin = normalise_origin(origin)
    except ValueError:
        return False
    for entry in allowed:
        if entry == origin:
            return True
        scheme, _, host = entry.partition("://*.")
        if host and origin.startswith(f"{scheme}://") and origin.endswith(f".{host}"):
            return True
    return False


def add_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """The CORS headers of an answer to `request` (the caller decided it may see it)."""
    origin = request.headers.get("Origin")
    # the SDKs send no cookies, but RudderStack's XHR may set withCredentials: an echoed
    # origin (never "*") with credentials allowed works for both
    response["Access-Control-Allow-Origin"] = origin or "*"
    if origin:
        response["Access-Control-Allow-Credentials"] = "true"
    # analytics.js honours Retry-After on a 429 only when the page may read it
    response["Access-Control-Expose-Headers"] = "Retry-After"
    response["Vary"] = "Origin"
    return response


def preflight(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    response["Access-Control-Allow-Headers"] = (
        request.headers.get("Access-Control-Request-Headers") or DEFAULT_HEADERS
    )
    response["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
    return add_headers(request, response)


def cors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer preflights at once and add the CORS headers to the view's answers. A view that
    refuses the origin (a restricted source) marks its answer `cors_refused`: it goes out
    without them, so the browser does not hand it to the page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.method == "OPTIONS":
            return preflight(request)
        response = view(request, *args, **kwargs)
        if getattr(response, "cors_refused", False):
            return response
        return add_headers(request, response)

    return wrapped

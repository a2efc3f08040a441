"""Segment/RudderStack-compatible HTTP endpoints (/v1/batch, /v1/track, ...).

Plain Django views, not DRF: this is the hot path, and its answers follow the tracking API
(exactly 200 with a small JSON body on success) rather than the management API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from cdp import logs, metrics
from cdp.errors import (
    ApplicationError,
    BadRequest,
    Forbidden,
    NotAuthenticated,
    PayloadTooLarge,
    RateLimited,
)
from profiles.collector import cors, gate, keys
from profiles.collector.decoding import decode_body, parse_json
from profiles.collector.keys import SourceInfo
from profiles.collector.normalize import now_utc
from profiles.collector.service import (
    RAW_SAMPLE_BYTES,
    collector_ingest,
    unreadable_request_record,
)
from profiles.models import FailureReason

logger = logging.getLogger(__name__)


def _json_response(body: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _error_response(exc: ApplicationError) -> HttpResponse:
    if isinstance(exc, RateLimited):
        return _json_response(exc.as_dict(), exc.status, Retry_After=str(exc.retry_after))
    response = _json_response(exc.as_dict(), exc.status)
    response.cors_refused = isinstance(exc, OriginRefused)  # type: ignore[attr-defined]
    return response


def _resolve_source(key: str | None) -> SourceInfo:
    if not key:
        raise NotAuthenticated(
            "No write key: send it as the Basic auth username or as `writeKey` in the body.",
            code="missing_write_key",
        )
    info = keys.lookup(key)
    if info is None:
        raise NotAuthenticated("Unknown or revoked write key.", code="invalid_write_key")
    if not info.enabled:
        raise NotAuthenticated("This source is disabled.", code="source_disabled")
    logs.bind(workspace_id=info.workspace_id)  # for the request's log records
    return info


def _check_origin(request: HttpRequest, source: SourceInfo) -> None:
    """A source restricted to some origins refuses browsers calling from others (server SDKs
    send no Origin and are not concerned)."""
    origin = request.headers.get("Origin")
    if (
        origin
        and source.allowed_origins
        and not cors.origin_allowed(origin, source.allowed_origins)
    ):
        raise OriginRefused(
            f"Source {source.name!r} does not accept calls from {origin}: add it to the "
            "source's allowed origins.",
            code="origin_not_allowed",
            detail={"origin": origin},
        )


class OriginRefused(Forbidden):
    """Goes out without CORS headers: the page never sees the answer."""


def _body_key(body: Any, batch: list[Any] | None) -> str | None:
    if isinstance(body, dict):
        key = body.get("writeKey")
        if isinstance(key, str) and key.strip():
            return key.strip()
    # Last resort: a per-event writeKey (all events of the request must agree).
    if batch:
        found = {e.get("writeKey") for e in batch if isinstance(e, dict) and e.get("writeKey")}
        if len(found) > 1:
            raise NotAuthenticated(
                "Events in one request carry different write keys; send one request per key.",
                code="mixed_write_keys",
            )
        if found:
            key = found.pop()
            return key if isinstance(key, str) else None
    return None


def _ingest(
    request: HttpRequest, route_type: str | None, *, query_key: str | None = None
) -> HttpResponse:
    received_at = now_utc()
    limit = settings.CDP_MAX_REQUEST_BYTES
    header_key = keys.header_write_key(request.META.get("HTTP_AUTHORIZATION", "")) or (
        query_key.strip() if query_key and query_key.strip() else None
    )
    source = None
    raw = b""
    try:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            if declared.isdigit() and int(declared) > limit:
                raw = request.read(RAW_SAMPLE_BYTES)
                raise _too_large(limit)
            raw = request.read(limit + 1)
            data = decode_body(
                raw, content_encoding=request.META.get("HTTP_CONTENT_ENCODING", ""), max_bytes=limit
            )
        except ApplicationError as exc:
            if header_key and exc.status == 413:
                source = keys.lookup(header_key)
                if source is not None and source.enabled:
                    unreadable_request_record(
                        source, FailureReason.REQUEST_TOO_LARGE, exc.message, raw
                    )
            raise
        try:
            body = parse_json(data)
        except BadRequest as exc:
            if header_key:
                source = keys.lookup(header_key)
                if source is not None and source.enabled:
                    unreadable_request_record(source, FailureReason.INVALID_JSON, exc.message, data)
            raise

        if route_type is None:
            raw_events, body = _batch_of(body)
        else:
            if not isinstance(body, dict):
                raise BadRequest(
                    f"Body must be a JSON object (one {route_type} event).", code="not_an_object"
                )
            raw_events = [body]
        batch_body = body if route_type is None else {}
        source = _resolve_source(header_key or _body_key(body, raw_events))
        _check_origin(request, source)
        admitted = gate.check(
            source_id=source.source_id,
            workspace_id=source.workspace_id,
            events=len(raw_events),
            limit=source.rate_limit_per_second,
        )
        if not admitted.allowed:
            raise RateLimited(
                f"Source {source.name!r} is over its limit of {source.rate_limit_per_second} "
                "events per second; retry after the Retry-After delay.",
                retry_after=admitted.retry_after,
            )
        result = collector_ingest(
            source=source,
            raw_events=raw_events,
            body=batch_body,
            route_type=route_type,
            received_at=received_at,
            door_size=admitted.door_size,
            kick=admitted.kick,
        )
    except ApplicationError as exc:
        return _error_response(exc)
    metrics.events_count(
        source_id=source.source_id,
        accepted=result.accepted,
        duplicates=result.duplicates,
        failed=result.failed,
        suppressed=result.dropped,
    )
    if result.failed and result.failed == result.received:
        # Nothing usable: say so (the events are kept in failed_events for replay).
        first = result.errors[0]
        return _json_response(
            {
                "error": {
                    "code": "no_valid_events",
                    "message": f"No event could be accepted; first error: {first['message']}.",
                    "detail": {"failed": result.failed, "errors": result.errors},
                }
            },
            400,
        )
    return _json_response(result.as_response())


def _too_large(limit: int) -> ApplicationError:
    return PayloadTooLarge(
        f"Request body exceeds the limit of {limit} bytes.",
        code="request_too_large",
        detail={"limit_bytes": limit},
    )


def _batch_of(body: Any) -> tuple[list[Any], dict[str, Any]]:
    events: Any
    if isinstance(body, list):
        events, body = body, {}
    elif isinstance(body, dict):
        events = body.get("batch")
        if events is None:
            raise BadRequest(
                'Body has no `batch` array; post {"batch": [events...]} or use /v1/track etc.',
                code="missing_batch",
            )
    else:
        raise BadRequest("Body must be a JSON object with a `batch` array.", code="no_batch")
    if not isinstance(events, list):
        raise BadRequest("`batch` must be an array of events.", code="invalid_batch")
    if not events:
        raise BadRequest("`batch` is empty: nothing to store.", code="empty_batch")
    return events, body


def _measured(
    view: Callable[[HttpRequest], HttpResponse], route: Callable[[HttpRequest], str]
) -> Callable[[HttpRequest], HttpResponse]:
    """Counts the view's answers by route and status, and times them."""

    def measured(request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        status = 500  # unless the view answers (a crash becomes a 500 further out)
        try:
            response = view(request)
            status = response.status_code
            return response
        finally:
            name = route(request)
            metrics.COLLECTOR_REQUEST_SECONDS.labels(route=name).observe(
                time.perf_counter() - started
            )
            metrics.COLLECTOR_REQUESTS.labels(route=name, status=str(status)).inc()

    measured.__name__ = view.__name__
    measured.csrf_exempt = True  # type: ignore[attr-defined]
    return measured


def _route_of(route_type: str | None) -> Callable[[HttpRequest], str]:
    """The metrics' route label: the endpoint's name (/v1/import shares the batch view)."""
    if route_type is not None:
        return lambda request: route_type
    return lambda request: "import" if "/import" in request.path else "batch"


def _make_view(route_type: str | None):  # type: ignore[no-untyped-def]
    @csrf_exempt
    @cors.cors
    def view(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _json_response(
                _error("method_not_allowed", f"{request.path} accepts POST only."),
                405,
                Allow="POST, OPTIONS",
            )
        return _ingest(request, route_type)

    view.__name__ = f"collect_{route_type or 'batch'}"
    return _measured(view, _route_of(route_type))


batch = _make_view(None)
identify = _make_view("identify")
track = _make_view("track")
page = _make_view("page")
screen = _make_view("screen")
group = _make_view("group")
alias = _make_view("alias")


# ---- what the browser SDKs fetch before they start ---------------------------------------------


def _data_plane(request: HttpRequest) -> tuple[str, str]:
    """(scheme, host[:port]) this platform is reached at, as the page's SDK sees it."""
    return request.scheme or "https", request.get_host()


@csrf_exempt
@cors.cors
def segment_settings(request: HttpRequest, write_key: str) -> HttpResponse:
    """analytics.js 2.0's CDN settings (`cdnURL` pointed here): the Segment.io integration
    alone, sending to this host. Only "Segment.io" in `integrations` keeps the SDK from loading
    anything else; `metrics.sampleRate` 0 keeps its telemetry from going to api.segment.io."""
    if request.method != "GET":
        return _json_response(_error("method_not_allowed", "GET only."), 405, Allow="GET")
    source = keys.lookup(write_key)
    if source is None or not source.enabled:
        # the SDK shows the answer's text in the console and does not start (as with
        # Segment's CDN, an unknown key is a 404)
        return _json_response(
            _error("invalid_write_key", "No such write key (unknown, revoked or disabled)."), 404
        )
    scheme, host = _data_plane(request)
    settings_body = {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{host}/v1",
                "protocol": scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
    return _json_response(settings_body, Cache_Control="public, max-age=60")


@csrf_exempt
@cors.cors
def rudder_source_config(request: HttpRequest) -> HttpResponse:
    """RudderStack's `configUrl` (pointed here): the source, with no device-mode
    destinations and the SDK's own telemetry off. The write key comes as Basic auth or as
    the `writeKey` parameter."""
    if request.method != "GET":
        return _json_response(_error("method_not_allowed", "GET only."), 405, Allow="GET")
    write_key = (
        keys.header_write_key(request.headers.get("Authorization", ""))
        or (request.GET.get("writeKey") or "").strip()
    )
    source = keys.lookup(write_key) if write_key else None
    if source is None:
        return _json_response(_error("invalid_write_key", "Unknown or revoked write key."), 401)
    off = {"enabled": False}
    body = {
        "isHosted": False,
        "source": {
            "id": str(source.source_id),
            "name": source.name,
            "writeKey": write_key,
            "workspaceId": str(source.workspace_id),
            # a disabled source: the SDK says so in the console and sends nothing
            "enabled": source.enabled,
            "deleted": False,
            "config": {"statsCollection": {"errors": off, "metrics": off}},
            "sourceDefinition": {"name": "Javascript", "displayName": "Javascript"},
            "destinations": [],
        },
        "consentManagementMetadata": {"providers": []},
    }
    return _json_response(body, Cache_Control="private, max-age=60")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": {}}}


@csrf_exempt
@cors.cors
def _beacon_batch(request: HttpRequest) -> HttpResponse:
    """RudderStack's beacon queue (`navigator.sendBeacon` on page leave): a batch with the
    write key in the query string, the one route where it is read from there (a beacon
    cannot set headers)."""
    if request.method != "POST":
        return _json_response(_error("method_not_allowed", "POST only."), 405, Allow="POST")
    return _ingest(request, None, query_key=request.GET.get("writeKey"))


beacon_batch = _measured(_beacon_batch, lambda request: "beacon")

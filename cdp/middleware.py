"""Every request gets an id: in the logs' context while it runs (cdp/logs.py), so each of its
log records carries it, and in the X-Request-Id header of its answer (an id a proxy sent in that
header is kept). API paths never answer with an HTML error page: 404s and crashes become JSON
errors, carrying the request id that the log record of the traceback carries too. While the
database does not answer, every path says so with 503 and Retry-After (SDKs back off and
resend) instead of a 500. Parameters with a NUL character are refused with a 400 before any
view runs."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from csp.constants import HEADER as CSP_HEADER
from csp.constants import HEADER_REPORT_ONLY as CSP_HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from django.conf import settings
from django.core.signals import setting_changed
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.template import loader

from cdp import logs
from cdp.errors import ValidationFailed, error_body

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/v1/", "/beacon/", "/sourceConfig")
DATABASE_RETRY_AFTER = 5  # seconds
REQUEST_ID_HEADER = "X-Request-Id"
# an id from a proxy in front is kept when it is this plain (it ends up in logs and headers)
GIVEN_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class JsonErrorsForApiPaths:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = given if GIVEN_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        request.request_id = request_id  # type: ignore[attr-defined]
        with logs.bound(fresh=True, request_id=request_id):
            response = self._answer(request)
        if REQUEST_ID_HEADER not in response:  # the decision API names its own
            response[REQUEST_ID_HEADER] = request_id
        return response

    def _answer(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIXES)
            and response.status_code in (403, 404, 405, 500)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            code = {403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
                response.status_code, "server_error"
            )
            message = {
                403: "Permission denied (CSRF token missing or not a member).",
                404: f"No API endpoint at {request.path}.",
                405: f"Method {request.method} is not allowed on {request.path}.",
            }.get(response.status_code, "Internal server error.")
            return JsonResponse(error_body(code, message), status=response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """One error record per failed request, with the request id from the logs' context
        (TextFormatter shows it as "[request <id>]"): the answers made here are marked as
        logged, so that Django does not log them again; a crash on a page is left to Django,
        which logs it (with the traceback) and answers with the 500 page."""
        request_id = getattr(request, "request_id", "") or uuid.uuid4().hex[:16]
        api = request.path.startswith(API_PREFIXES)
        if isinstance(exception, OperationalError | InterfaceError):
            logger.error(
                "database unavailable on %s %s: %s", request.method, request.path, exception
            )
            if api:
                body = error_body(
                    "database_unavailable",
                    "The database is not answering; retry after the Retry-After delay.",
                    {"request_id": request_id},
                )
                response: HttpResponse = JsonResponse(body, status=503)
            else:
                # rendered without the request: its user and session need the database
                page = loader.render_to_string("503.html", {"request_id": request_id})
                response = HttpResponse(page, status=503)
            response["Retry-After"] = str(DATABASE_RETRY_AFTER)
            response._has_been_logged = True  # type: ignore[attr-defined]
            return response
        if not api:
            return None
        logger.exception("unhandled error on %s %s", request.method, request.path)
        body = error_body("server_error", "Internal server error.", {"request_id": request_id})
        response = JsonResponse(body, status=500)
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RejectNulInParameters:
    """A NUL character in a query or form parameter is never valid (Postgres cannot store or
    compare it): the request is answered 400 naming the parameter, before any view runs, so no
    search box or filter can be made to crash a page. JSON bodies are checked where they are
    parsed (the collector, the rule validator)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = _nul_parameter(request)
        if name is None:
            return self.get_response(request)
        error = ValidationFailed.at(name, "contains a NUL character (\\x00), which is never valid")
        if request.path.startswith(API_PREFIXES):
            return JsonResponse(error.as_dict(), status=400)
        return render(request, "400.html", {"message": error.message}, status=400)


def _nul_parameter(request: HttpRequest) -> str | None:
    sources = [request.GET]
    # form bodies of the UI's own forms; API and collector bodies are parsed (and checked) by
    # their views (SDKs send gzip with whatever content type they like)
    if (
        request.method == "POST"
        and request.content_type in FORM_TYPES
        and not request.path.startswith(API_PREFIXES)
    ):
        sources.append(request.POST)
    for params in sources:
        for key, values in params.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return key.replace("\x00", "\\x00")
    return None


# what a view may set on its response to change its policy (django-csp's decorators)
_CSP_PER_RESPONSE = (
    "_csp_exempt",
    "_csp_exempt_ro",
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)


class ContentSecurityPolicy(CSPMiddleware):
    """django-csp's middleware, with the headers of a response that changes nothing about the
    policy (no decorator, no nonce asked for) built once per settings instead of once per
    response: building them took a tenth of a single-event request's Python time. The first
    such response is answered by django-csp itself and its headers are kept."""

    _plain: dict[str, str] | None = None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if (
            getattr(request, "_csp_nonce", None) is not None
            or any(hasattr(response, name) for name in _CSP_PER_RESPONSE)
            or (settings.DEBUG and response.status_code in (404, 500))
            or _csp_excluded(request.path_info)
        ):
            return super().process_response(request, response)
        plain = ContentSecurityPolicy._plain
        if plain is None:
            own = CSP_HEADER in response or CSP_HEADER_REPORT_ONLY in response
            response = super().process_response(request, response)
            if own:  # a view's own header is not the policy
                return response
            ContentSecurityPolicy._plain = {
                header: response[header]
                for header in (CSP_HEADER, CSP_HEADER_REPORT_ONLY)
                if header in response
            }
            return response
        for header, value in plain.items():
            if header not in response:  # a view that set its own keeps it
                response[header] = value
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response


def _csp_excluded(path: str) -> bool:
    for name in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY"):
        prefixes = (getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES")
        if prefixes and path.startswith(tuple(prefixes)):
            return True
    return False


@receiver(setting_changed)
def _forget_csp_headers(setting: str, **_: object) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        ContentSecurityPolicy._plain = None

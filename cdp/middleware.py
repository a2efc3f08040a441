"""API paths never answer with an HTML error page: 404s and crashes become JSON errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from cdp.errors import error_body

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/v1/")


class JsonErrorsForApiPaths:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
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
        if request.path.startswith(API_PREFIXES):
            logger.exception("unhandled error on %s", request.path)
            return JsonResponse(error_body("server_error", "Internal server error."), status=500)
        return None

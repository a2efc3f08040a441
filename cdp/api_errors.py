"""DRF exception handler: every API error leaves as {"error": {"code", "message", "detail"}}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from cdp.errors import NON_FIELD, ApplicationError, RateLimited, ValidationFailed, error_body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """{'rule': {'all': [..]}} -> {'rule.all': [...]} so messages can name the path."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, path))
    elif isinstance(detail, list) and detail and all(isinstance(d, str) for d in detail):
        out[prefix or NON_FIELD] = [str(d) for d in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        out[prefix or NON_FIELD] = [str(detail)]
    return out


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        return Response(exc.as_dict(), status=exc.status, headers=headers)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("forbidden", str(exc) or "Permission denied."), status=403)
    if isinstance(exc, DjangoValidationError):
        fields = _flatten(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        return Response(_validation(fields), status=400)
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(_validation(_flatten(exc.detail)), status=400)
    if isinstance(exc, drf_exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf_exceptions.Throttled) and wait:
            headers["Retry-After"] = str(int(wait))
        return Response(
            error_body(str(code), str(exc.detail)), status=exc.status_code, headers=headers
        )
    return None


def _validation(fields: dict[str, list[str]]) -> dict[str, Any]:
    """DRF's and Django's validation errors in our one shape (ValidationFailed's)."""
    return ValidationFailed(fields or {NON_FIELD: ["invalid"]}).as_dict()

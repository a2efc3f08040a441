"""One exception hierarchy; the API layer turns each into the JSON error shape of DESIGN.md:
`{"error": {"code", "message", "detail"}}`.

Validation errors have one shape everywhere (API, collector replay, pages): code
`validation_failed`, detail `{"fields": {"<path>": ["message", ...]}}`, where a path names the
bad input as the caller sent it (`name`, `rule.all[1].count.value`, `identifiers[3]`) and
NON_FIELD names the request as a whole. Other errors keep their own code and detail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NON_FIELD = "non_field_errors"  # the path of an error about the request as a whole (DRF's)


class ApplicationError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail = detail or {}

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class BadRequest(ApplicationError):
    """A request that cannot be read at all (a body that is not JSON, not gzip, no batch):
    its own code, no fields."""

    status = 400
    code = "bad_request"


class ValidationFailed(ApplicationError):
    """Input that was read but is wrong: each bad path with its messages. The message is the
    first of them, prefixed by its path (`name: must not be empty`)."""

    status = 400
    code = "validation_failed"

    def __init__(
        self, fields: Mapping[str, str | Sequence[str]], *, message: str | None = None
    ) -> None:
        clean = {path: [m] if isinstance(m, str) else list(m) for path, m in fields.items()}
        if not clean or not all(clean.values()):
            raise ValueError("ValidationFailed needs at least one message per path")
        path, messages = next(iter(clean.items()))
        if message is None:
            message = messages[0] if path == NON_FIELD else f"{path}: {messages[0]}"
        super().__init__(message, detail={"fields": clean})

    @classmethod
    def at(cls, path: str, message: str) -> ValidationFailed:
        """One message about one path."""
        return cls({path: [message]})

    @property
    def fields(self) -> dict[str, list[str]]:
        return self.detail["fields"]

    def first(self, path: str) -> str | None:
        """The first message about `path` (or about any path below it)."""
        for key, messages in self.fields.items():
            if key == path or key.startswith((f"{path}.", f"{path}[")):
                return messages[0]
        return None


class NotAuthenticated(ApplicationError):
    status = 401
    code = "not_authenticated"


class Forbidden(ApplicationError):
    status = 403
    code = "forbidden"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


def duplicate(path: str, message: str) -> Conflict:
    """409 `duplicate`: a unique name or key taken already; the detail names the field as a
    validation error does, so forms can show it there."""
    return Conflict(f"{path}: {message}", code="duplicate", detail={"fields": {path: [message]}})


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "payload_too_large"


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, detail: dict[str, Any] | None = None):
        super().__init__(message, detail={"retry_after": retry_after, **(detail or {})})
        self.retry_after = retry_after


# ---- the catalogue of codes (documented in the OpenAPI schema) ------------------------------


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    code: str
    status: int
    when: str
    detail: str = ""  # what `detail` holds, when it holds something


ERROR_CODES: dict[str, ErrorDoc] = {}


def document_errors(*docs: ErrorDoc) -> None:
    """Add codes to the catalogue the OpenAPI schema lists (each API module documents the
    codes its endpoints answer with, beside them)."""
    for doc in docs:
        ERROR_CODES[doc.code] = doc


document_errors(
    ErrorDoc(
        ValidationFailed.code,
        400,
        "input that was read but is wrong",
        '{"fields": {"<path>": ["message", ...]}}: every bad path (`name`, '
        "`rule.all[1].count.value`, `identifiers[3]`; `non_field_errors` for the request as a "
        "whole)",
    ),
    ErrorDoc("parse_error", 400, "the body is not valid JSON"),
    ErrorDoc(NotAuthenticated.code, 401, "no session and no valid `Authorization: Token`"),
    ErrorDoc(Forbidden.code, 403, "your role does not allow this in the workspace"),
    ErrorDoc(
        "owner_required",
        403,
        "a change only an owner may make: turning two-person approval off, shortening "
        "retention, granting the owner role or changing an owner",
    ),
    ErrorDoc(NotFound.code, 404, "no such object in this workspace"),
    ErrorDoc("method_not_allowed", 405, "the path does not take this method"),
    ErrorDoc(
        "duplicate",
        409,
        "a unique name or key is taken",
        '{"fields": {"<field>": ["message"]}}, as a validation error',
    ),
    ErrorDoc(RateLimited.code, 429, "too many requests", '{"retry_after": seconds}'),
    ErrorDoc(
        "server_error",
        500,
        "an unexpected error",
        '{"request_id": "..."}: the id its logged traceback carries',
    ),
    ErrorDoc(
        "database_unavailable",
        503,
        "the database does not answer (with Retry-After: retry, nothing was stored)",
        '{"request_id": "..."}',
    ),
)


def error_body(code: str, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail or {}}}

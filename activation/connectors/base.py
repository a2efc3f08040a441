"""The one interface every destination kind implements (a module per kind in this package).

The delivery engine (activation.delivery) claims deliveries, checks consent and hands a batch
of `Item`s to the kind's `send`; the kind answers with an `Outcome` — it never raises for a
destination's failure, it classifies it: retryable (408, 5xx, timeouts, connection errors),
throttled (429 and its Retry-After) or permanent (other 4xx, bad configuration). `test` is
the "Send test" button: one harmless request, reported as request and answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ConfigField:
    name: str
    label: str
    kind: str = "text"  # text | url | int | bool | choice | secret | json
    required: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()

    @property
    def secret(self) -> bool:
        return self.kind == "secret"


@dataclass(frozen=True, slots=True)
class Target:
    """A destination as a connector sees it: settings, decrypted secrets, limits."""

    id: int
    workspace_id: int
    name: str
    kind: str
    config: dict[str, Any]
    secrets: dict[str, str]
    timeout: float
    batch_size: int


@dataclass(frozen=True, slots=True)
class Item:
    """One delivery: `key` is its idempotency key (stable across retries)."""

    delivery_id: int
    key: str
    kind: str  # upsert | remove | event | deletion
    profile_id: int | None
    payload: dict[str, Any]
    row_id: int = 0  # the outbox row it comes from (a bulk row carries many items)

    @property
    def position(self) -> tuple[int, int]:
        """Outbox order: the row's id, then the item's place in it."""
        return (self.row_id or self.delivery_id, self.delivery_id)


@dataclass(slots=True)
class Outcome:
    ok: bool
    reason: str = ""  # machine-readable: http_503, timeout, connection_error, tls_error, …
    error: str = ""  # for people; never carries a secret
    retryable: bool = False
    throttled: bool = False  # 429: wait Retry-After, not a failed attempt
    retry_after: float | None = None
    status_code: int | None = None
    response: str = ""
    request: dict[str, Any] = field(default_factory=dict)  # method, target, items, bytes
    rejected: dict[int, str] = field(default_factory=dict)  # delivery id -> permanent reason

    @classmethod
    def success(cls, **kw: Any) -> Outcome:
        return cls(ok=True, **kw)

    @classmethod
    def retry(cls, reason: str, error: str, **kw: Any) -> Outcome:
        return cls(ok=False, retryable=True, reason=reason, error=error, **kw)

    @classmethod
    def fail(cls, reason: str, error: str, **kw: Any) -> Outcome:
        return cls(ok=False, retryable=False, reason=reason, error=error, **kw)


@dataclass(slots=True)
class TestResult:
    ok: bool
    message: str
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)


def http_outcome(
    status: int, body: str, headers: Any, request: dict[str, Any], *, retry_after_default: float
) -> Outcome:
    """The classification every HTTP kind shares: 2xx ok, 429 throttled (Retry-After in
    seconds or an HTTP date), 408 and 5xx retry, any other status fails for good."""
    snippet = body[:2048]
    if 200 <= status < 300:
        return Outcome.success(status_code=status, response=snippet, request=request)
    if status == 429:
        return Outcome(
            ok=False,
            throttled=True,
            retryable=True,
            reason="http_429",
            error="the destination asked to slow down (429)",
            retry_after=parse_retry_after(headers.get("retry-after"), retry_after_default),
            status_code=status,
            response=snippet,
            request=request,
        )
    error = f"the destination answered {status}"
    if status == 408 or status >= 500:
        return Outcome.retry(
            f"http_{status}", error, status_code=status, response=snippet, request=request
        )
    return Outcome.fail(
        f"http_{status}", error, status_code=status, response=snippet, request=request
    )


def parse_retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    from django.utils import timezone

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, (when - timezone.now()).total_seconds())


def scrub(text: str, secrets: dict[str, str]) -> str:
    """`text` with every secret value of the destination masked (error messages of drivers
    may quote a DSN, a URL with credentials, a header)."""
    for value in secrets.values():
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Connector:
    """Base of the destination kinds. Subclasses set `kind`, `label`, `fields` and implement
    `send` (and, where the kind needs it, `normalise` for audience identifiers)."""

    kind: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    fields: ClassVar[tuple[ConfigField, ...]] = ()
    # identifier types this kind can match people on; empty = any (it receives what the
    # mapping sends); `hashed_only`: identifiers go out only as SHA-256 digests
    identifier_types: ClassVar[tuple[str, ...]] = ()
    hashed_only: ClassVar[bool] = False
    max_batch: ClassVar[int] = 10_000

    def validate(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, list[str]]:
        """Field errors knowable without a network call: {field: [message]}."""
        errors: dict[str, list[str]] = {}
        for f in self.fields:
            value = secrets.get(f.name) if f.secret else config.get(f.name)
            if f.required and value in (None, ""):
                errors.setdefault(f.name, []).append("required")
        return errors

    def normalise(self, identifier_type: str, value: str) -> str | None:
        """The identifier as this destination matches it (None: unusable for it)."""
        value = value.strip()
        if identifier_type == "email":
            value = value.lower()
            return value if "@" in value else None
        return value or None

    def normalise_sql(self, identifier_type: str, column: str) -> str | None:
        """`normalise` as a SQL expression over `column` (NULL: unusable), for the planner's
        set-based path, which uses it only on values of printable ASCII (where Python's
        `strip` and `lower` and these agree). None: only Python can — every kind that
        overrides `normalise` and not this."""
        if type(self).normalise is not Connector.normalise:
            return None
        trimmed = f"btrim({column}, ' ')"
        if identifier_type == "email":
            lowered = f'lower({trimmed} COLLATE "C")'
            return f"CASE WHEN strpos({lowered}, '@') > 0 THEN {lowered} END"
        return f"NULLIF({trimmed}, '')"

    def send(self, target: Target, items: list[Item]) -> Outcome:
        raise NotImplementedError

    def test(self, target: Target) -> TestResult:
        """Send one harmless test message; the default sends a test event through `send`."""
        item = Item(
            delivery_id=0,
            key="00000000-0000-0000-0000-000000000000",
            kind="event",
            profile_id=None,
            payload={"type": "test", "message": "Test from the CDP: this destination works."},
        )
        outcome = self.send(target, [item])
        return TestResult(
            ok=outcome.ok,
            message=outcome.error or "the destination accepted the test message",
            request=outcome.request,
            response={"status": outcome.status_code, "body": outcome.response},
        )

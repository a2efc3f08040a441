"""Ad platforms: Google Customer Match and Meta Custom Audiences, fed with SHA-256 digests of
e-mail addresses and phone numbers (hashed_only: nothing readable ever leaves).

What a batch of deliveries becomes:
- upsert → the `added` digests are added, the `removed` ones (an identifier that changed)
  removed; remove → its `removed` digests are removed; deletion → every digest it names is
  removed (a deletion wins over an add of the same digest in the batch); event → rejected
  item by item as `unsupported_kind`.
- Within a batch a digest ends in one state: present when some profile's last change adds
  it, absent otherwise. So one batch never adds and removes the same digest, and a profile
  that gained and lost an address in one batch ends without it.

Google Ads API (REST, OfflineUserDataJobService; developers.google.com/google-ads/api/docs/
remarketing/audience-segments/customer-match/manage and /troubleshoot; reference
OfflineUserDataJobOperation, AddOfflineUserDataJobOperationsRequest, OfflineUserDataJobError):
`POST customers/{id}/offlineUserDataJobs:create` (type CUSTOMER_MATCH_USER_LIST, the list's
resource name, consent GRANTED on add jobs — the engine sends only people allowed for the
destination's purpose), `POST {job}:addOperations` with `create`/`remove` operations of one
`UserData` per person (one `UserIdentifier` per digest: hashedEmail | hashedPhoneNumber, at
most 20 per UserData, at most 100,000 per request, partial failure on), then `POST {job}:run`.
Adds and removes go to separate jobs (mixing them is CONFLICTING_OPERATION). Headers:
`Authorization: Bearer`, `developer-token`, optional `login-customer-id`. Errors are
google.rpc.Status JSON with GoogleAdsFailure details: 429/RESOURCE_EXHAUSTED/quotaError →
throttled (quotaErrorDetails.retryDelay, else Retry-After, else 60 s); 401 → auth_failed;
403 → permission_denied; 5xx, DEADLINE_EXCEEDED, CONCURRENT_MODIFICATION → retry; other 4xx
→ a dead letter. The `Get` methods are gone since v10, so the test reads the list with
`googleAds:search` (GAQL).

Meta Marketing API (developers.facebook.com/docs/marketing-api/reference/custom-audience/
users, …/overview/rate-limiting, …/error-reference): `POST /{audience_id}/users` adds and
`DELETE /{audience_id}/users` removes, form-encoded `payload` = {"schema": "EMAIL_SHA256" |
"PHONE_SHA256", "data": [digest, …]} (single-key schema, at most 10,000 records a request)
with a `session` {session_id, batch_seq, last_batch_flag, estimated_num_total} tying the
requests of one send together. Errors are {"error": {message, type, code, error_subcode,
fbtrace_id}}: codes 4, 17, 32, 613 and 80000–80014 (Business Use Case limits; 80003 is custom
audiences) → throttled, waiting X-Business-Use-Case-Usage's estimated_time_to_regain_access
(minutes) or Retry-After, else 60 s; 190/102 (OAuthException) → auth_failed; 10 and 200–299 →
permission_denied; 1, 2 or is_transient, and 5xx → retry; 100/33 → the audience is unknown.

Retrying a whole batch is safe: adding a digest a list already holds, or removing one it does
not, changes nothing on either platform, and a retried Meta send reuses its session id and
sequence numbers (derived from the deliveries' idempotency keys). A Google job created by an
attempt that failed before `run` is simply never run (the platform discards it)."""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

from activation.connectors import register
from activation.connectors.base import (
    ConfigField,
    Connector,
    Item,
    Outcome,
    Target,
    TestResult,
    parse_retry_after,
)
from activation.connectors.httpclient import client, display_url, url_problem
from profiles.identifiers import normalize_phone

RETRY_AFTER_DEFAULT = 60.0  # neither platform always says how long to wait
GOOGLE_MAX_IDENTIFIERS_PER_REQUEST = 100_000  # OfflineUserDataJobError.TOO_MANY_USER_IDENTIFIERS
GOOGLE_MAX_IDENTIFIERS_PER_USER = 20
GOOGLE_DEFAULT_PER_REQUEST = 10_000  # Google's advice for the fastest processing
META_MAX_RECORDS_PER_REQUEST = 10_000

_DIGEST = re.compile(r"[0-9a-f]{64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CUSTOMER_ID = re.compile(r"\d{3}-?\d{3}-?\d{4}")
_SNIPPET = 2048


# ---- what a batch asks for ------------------------------------------------------------------


def identifier_type(name: str) -> str | None:
    """The identifier type behind a mapped name ("email_sha256" → "email")."""
    for kind in ("email", "phone"):
        if name.startswith(kind):
            return kind
    return None


@dataclass(slots=True)
class Group:
    """One person's digests in one direction: a UserData on Google."""

    delivery_id: int
    digests: dict[str, list[str]]  # identifier type -> digests

    def size(self) -> int:
        return sum(len(v) for v in self.digests.values())


@dataclass(slots=True)
class Changes:
    add: list[Group] = field(default_factory=list)
    remove: list[Group] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)


def _item_ops(item: Item) -> list[tuple[str, str, bool]] | str:
    """(type, digest, present) for each digest the item touches, or why it cannot be sent."""
    payload = item.payload or {}
    wanted: list[tuple[str, bool]] = []
    if item.kind == "upsert":
        wanted = [("added", True), ("removed", False)]
    elif item.kind == "remove":
        wanted = [("removed", False)]
    elif item.kind == "deletion":
        wanted = [("identifiers", False)]
    else:
        return "unsupported_kind"
    ops: list[tuple[str, str, bool]] = []
    for key, present in wanted:
        for name, digests in (payload.get(key) or {}).items():
            kind = identifier_type(str(name))
            if kind is None:
                return "unknown_identifier"
            for digest in digests or []:
                if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
                    return "invalid_identifier"  # never send anything that is not a digest
                ops.append((kind, digest, present))
    return ops


def plan_changes(items: list[Item]) -> Changes:
    changes = Changes()
    per_item: list[tuple[Item, list[tuple[str, str, bool]]]] = []
    owners: dict[tuple[str, str], dict[int, bool]] = {}
    deleted: set[tuple[str, str]] = set()
    for item in items:
        ops = _item_ops(item)
        if isinstance(ops, str):
            changes.rejected[item.delivery_id] = ops
            continue
        per_item.append((item, ops))
        # deletions have no profile id: each is its own owner
        owner = item.profile_id if item.profile_id is not None else -item.delivery_id
        for kind, digest, wanted in ops:
            owners.setdefault((kind, digest), {})[owner] = wanted
            if item.kind == "deletion":
                deleted.add((kind, digest))

    def present(key: tuple[str, str]) -> bool:
        return key not in deleted and any(owners[key].values())

    # each digest travels with the last item that wants it where it ends (so a person's
    # UserData never carries a digest another person brought)
    home: dict[tuple[str, str], int] = {}
    for index in reversed(range(len(per_item))):
        for kind, digest, wanted in per_item[index][1]:
            key = (kind, digest)
            if key not in home and wanted == present(key):
                home[key] = index
    for index, (item, ops) in enumerate(per_item):
        adds: dict[str, list[str]] = {}
        removes: dict[str, list[str]] = {}
        for kind, digest, _ in ops:
            key = (kind, digest)
            if home.get(key) != index:
                continue
            del home[key]  # once, even when the item names it twice
            (adds if present(key) else removes).setdefault(kind, []).append(digest)
        if adds:
            changes.add.append(Group(item.delivery_id, adds))
        if removes:
            changes.remove.append(Group(item.delivery_id, removes))
    return changes


def normalise_email(value: str) -> str | None:
    text = value.strip().lower()
    return text if _EMAIL.fullmatch(text) else None


# ---- HTTP -----------------------------------------------------------------------------------


def exchange(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout: float,
    content: bytes | None = None,
    request: dict[str, Any] | None = None,
) -> httpx.Response | Outcome:
    """One request; a transport failure comes back classified (as httpclient.post does), an
    answer comes back whole: these APIs say in the body and headers what went wrong."""
    request = request or {}
    try:
        return client().request(
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


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _throttled(
    response: httpx.Response, wait: float, error: str, request: dict[str, Any]
) -> Outcome:
    return Outcome(
        ok=False,
        throttled=True,
        retryable=True,
        reason="rate_limited",
        error=error,
        retry_after=wait,
        status_code=response.status_code,
        response=response.text[:_SNIPPET],
        request=request,
    )


def _base(target: Target, default: str) -> str:
    return str(target.config.get("api_base") or default).strip().rstrip("/")


def _bounded_int(value: Any, low: int, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# ---- Google Customer Match ------------------------------------------------------------------

GOOGLE_FIELDS = {"email": "hashedEmail", "phone": "hashedPhoneNumber"}


@dataclass(slots=True)
class GoogleError:
    status: str
    message: str
    codes: list[str]  # "quotaError.RESOURCE_TEMPORARILY_EXHAUSTED", …
    retry_delay: float | None


def google_error(response: httpx.Response) -> GoogleError:
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GoogleError("", response.text[:200], [], None)
    codes: list[str] = []
    retry: float | None = None
    for detail in error.get("details") or []:
        for failure in (detail or {}).get("errors") or []:
            for group, code in (failure.get("errorCode") or {}).items():
                codes.append(f"{group}.{code}")
            delay = ((failure.get("details") or {}).get("quotaErrorDetails") or {}).get(
                "retryDelay"
            )
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    retry = max(0.0, float(delay[:-1]))
                except ValueError:
                    pass
    return GoogleError(
        str(error.get("status") or ""), str(error.get("message") or ""), codes, retry
    )


def google_outcome(response: httpx.Response, request: dict[str, Any]) -> Outcome:
    status = response.status_code
    err = google_error(response)
    what = ", ".join(err.codes) or err.status or f"HTTP {status}"
    error = f"Google Ads answered {status} ({what}): {err.message}"[:500]
    kw: dict[str, Any] = {
        "status_code": status,
        "response": response.text[:_SNIPPET],
        "request": request,
    }

    def has(prefix: str) -> bool:
        return any(c.startswith(prefix) for c in err.codes)

    if has("quotaError.ACCESS_PROHIBITED"):  # a quota error that waiting does not lift
        return Outcome.fail("permission_denied", error, **kw)
    if status == 429 or err.status == "RESOURCE_EXHAUSTED" or has("quotaError."):
        wait = err.retry_delay
        if wait is None:
            wait = parse_retry_after(response.headers.get("retry-after"), RETRY_AFTER_DEFAULT)
        return _throttled(response, wait, error, request)
    if status == 401 or err.status == "UNAUTHENTICATED" or has("authenticationError."):
        return Outcome.fail("auth_failed", error, **kw)
    if status == 403 or err.status == "PERMISSION_DENIED" or has("authorizationError."):
        return Outcome.fail("permission_denied", error, **kw)
    transient = err.status in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL")
    if (
        status >= 500
        or status == 408
        or transient
        or has("databaseError.CONCURRENT")
        or has("internalError.")
    ):
        return Outcome.retry(f"http_{status}", error, **kw)
    if status == 404:
        return Outcome.fail("not_found", error, **kw)
    return Outcome.fail("invalid_request", error, **kw)


def google_partial_failures(body: Any) -> dict[int, str]:
    """Operation index -> error code, from a partialFailureError (google.rpc.Status)."""
    out: dict[int, str] = {}
    status = body.get("partialFailureError") if isinstance(body, dict) else None
    if not isinstance(status, dict) or not status.get("code"):
        return out
    for detail in status.get("details") or []:
        for failure in (detail or {}).get("errors") or []:
            code = next(iter((failure.get("errorCode") or {}).values()), "rejected")
            path = (failure.get("location") or {}).get("fieldPathElements") or []
            if path and path[0].get("fieldName") == "operations" and "index" in path[0]:
                out[int(path[0]["index"])] = str(code).lower()
    return out


class GoogleCustomerMatch(Connector):
    kind = "google_customer_match"
    label = "Google Customer Match"
    description = "Audiences as a Customer Match list (Google Ads API, hashed e-mail and phone)."
    identifier_types = ("email", "phone")
    hashed_only = True
    max_batch = 10_000
    default_base: ClassVar[str] = "https://googleads.googleapis.com/v20"
    fields = (
        ConfigField(
            "customer_id", "Customer ID", required=True, help="10 digits, e.g. 123-456-7890"
        ),
        ConfigField(
            "user_list_id", "User list ID", required=True, help="the Customer Match list's ID"
        ),
        ConfigField(
            "login_customer_id",
            "Login customer ID",
            help="the manager account's ID, when access goes through one",
        ),
        ConfigField("api_base", "API base URL", "url", default=default_base),
        ConfigField(
            "identifiers_per_request",
            "Identifiers per request",
            "int",
            default=GOOGLE_DEFAULT_PER_REQUEST,
            help=f"at most {GOOGLE_MAX_IDENTIFIERS_PER_REQUEST:,} (Google's limit)",
        ),
        ConfigField("developer_token", "Developer token", "secret", required=True),
        ConfigField(
            "access_token", "OAuth access token", "secret", required=True, help="Bearer token"
        ),
    )

    def validate(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, list[str]]:
        errors = super().validate(config, secrets)
        for name in ("customer_id", "login_customer_id"):
            value = config.get(name)
            if value not in (None, "") and not _CUSTOMER_ID.fullmatch(str(value).strip()):
                errors.setdefault(name, []).append("expected 10 digits, e.g. 123-456-7890")
        user_list = config.get("user_list_id")
        if user_list not in (None, "") and not str(user_list).strip().isdigit():
            errors.setdefault("user_list_id", []).append("expected the list's numeric ID")
        problem = url_problem(config.get("api_base") or self.default_base)
        if problem:
            errors.setdefault("api_base", []).append(problem)
        per = config.get("identifiers_per_request", GOOGLE_DEFAULT_PER_REQUEST)
        if not _bounded_int(per, 1, GOOGLE_MAX_IDENTIFIERS_PER_REQUEST):
            errors.setdefault("identifiers_per_request", []).append(
                f"expected 1 to {GOOGLE_MAX_IDENTIFIERS_PER_REQUEST}"
            )
        return errors

    def normalise(self, identifier_type: str, value: str) -> str | None:
        if identifier_type == "email":
            return normalise_email(value)
        if identifier_type == "phone":
            return normalize_phone(value.strip())  # E.164, "+4915112345678"
        return None

    # -- requests --

    def _customer(self, target: Target) -> str:
        return re.sub(r"\D", "", str(target.config.get("customer_id", "")))

    def _headers(self, target: Target) -> dict[str, str]:
        headers = {
            "authorization": f"Bearer {target.secrets.get('access_token', '')}",
            "developer-token": target.secrets.get("developer_token", ""),
            "content-type": "application/json",
        }
        login = re.sub(r"\D", "", str(target.config.get("login_customer_id") or ""))
        if login:
            headers["login-customer-id"] = login
        return headers

    def _post(
        self, target: Target, path: str, body: dict[str, Any], calls: list[dict[str, Any]]
    ) -> tuple[httpx.Response | None, Outcome | None]:
        """POST `body`; (answer, None) on 2xx, (answer or None, outcome) otherwise."""
        content = orjson.dumps(body)
        calls.append({"method": "POST", "path": path, "bytes": len(content)})
        base = _base(target, self.default_base)
        request: dict[str, Any] = {"method": "POST", "target": display_url(base), "calls": calls}
        answer = exchange(
            "POST",
            f"{base}/{path}",
            headers=self._headers(target),
            timeout=target.timeout,
            content=content,
            request=request,
        )
        if isinstance(answer, Outcome):
            return None, answer
        calls[-1]["status"] = answer.status_code
        if not 200 <= answer.status_code < 300:
            return answer, google_outcome(answer, request)
        return answer, None

    def _job(
        self,
        target: Target,
        operation: str,  # create | remove
        groups: list[Group],
        calls: list[dict[str, Any]],
        rejected: dict[int, str],
    ) -> Outcome | None:
        customer = self._customer(target)
        user_list = str(target.config.get("user_list_id", "")).strip()
        metadata: dict[str, Any] = {"userList": f"customers/{customer}/userLists/{user_list}"}
        if operation == "create":
            # consent is asked for adds (not removes); the engine only sends people allowed
            # for the destination's purpose
            metadata["consent"] = {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}
        answer, failed = self._post(
            target,
            f"customers/{customer}/offlineUserDataJobs:create",
            {
                "job": {
                    "type": "CUSTOMER_MATCH_USER_LIST",
                    "customerMatchUserListMetadata": metadata,
                }
            },
            calls,
        )
        if failed is not None:
            return failed
        job = (_json(answer) or {}).get("resourceName") if answer is not None else None
        if not isinstance(job, str) or not job.startswith(f"customers/{customer}/"):
            return Outcome.retry("bad_answer", "Google Ads created a job without a resource name")
        per_request = int(
            target.config.get("identifiers_per_request") or GOOGLE_DEFAULT_PER_REQUEST
        )
        per_request = max(1, min(per_request, GOOGLE_MAX_IDENTIFIERS_PER_REQUEST))
        for chunk in self._requests(groups, per_request):
            operations = [
                {
                    operation: {
                        "userIdentifiers": [
                            {GOOGLE_FIELDS[kind]: digest}
                            for kind, digests in group.digests.items()
                            for digest in digests
                        ]
                    }
                }
                for group in chunk
            ]
            answer, failed = self._post(
                target,
                f"{job}:addOperations",
                {"operations": operations, "enablePartialFailure": True},
                calls,
            )
            if failed is not None:
                return failed
            for index, code in google_partial_failures(_json(answer) if answer else None).items():
                if 0 <= index < len(chunk):
                    rejected[chunk[index].delivery_id] = code[:64]
        _, failed = self._post(target, f"{job}:run", {}, calls)
        return failed

    @staticmethod
    def _requests(groups: list[Group], per_request: int) -> Iterator[list[Group]]:
        """UserData of at most 20 identifiers, packed into requests of at most
        `per_request` identifiers."""
        pieces: list[Group] = []
        for group in groups:
            flat = [(k, d) for k, ds in group.digests.items() for d in ds]
            for start in range(0, len(flat), GOOGLE_MAX_IDENTIFIERS_PER_USER):
                part: dict[str, list[str]] = {}
                for kind, digest in flat[start : start + GOOGLE_MAX_IDENTIFIERS_PER_USER]:
                    part.setdefault(kind, []).append(digest)
                pieces.append(Group(group.delivery_id, part))
        chunk: list[Group] = []
        size = 0
        for piece in pieces:
            if chunk and size + piece.size() > per_request:
                yield chunk
                chunk, size = [], 0
            chunk.append(piece)
            size += piece.size()
        if chunk:
            yield chunk

    def send(self, target: Target, items: list[Item]) -> Outcome:
        changes = plan_changes(items)
        calls: list[dict[str, Any]] = []
        rejected = dict(changes.rejected)
        for operation, groups in (("remove", changes.remove), ("create", changes.add)):
            if groups:
                failed = self._job(target, operation, groups, calls, rejected)
                if failed is not None:
                    return failed
        return Outcome.success(
            status_code=calls[-1].get("status") if calls else None,
            rejected=rejected,
            request={
                "method": "POST",
                "target": display_url(_base(target, self.default_base)),
                "items": len(items),
                "calls": calls,
                "added": sum(g.size() for g in changes.add),
                "removed": sum(g.size() for g in changes.remove),
            },
        )

    def test(self, target: Target) -> TestResult:
        customer = self._customer(target)
        user_list = str(target.config.get("user_list_id", "")).strip()
        if not customer or not user_list.isdigit():
            return TestResult(ok=False, message="customer_id and user_list_id are required")
        # GAQL, not SQL; user_list is all digits (checked above)
        fields = "user_list.id, user_list.name, user_list.size_for_search"
        query = f"SELECT {fields} FROM user_list WHERE user_list.id = {user_list}"  # noqa: S608
        path = f"customers/{customer}/googleAds:search"
        request = {
            "method": "POST",
            "target": f"{display_url(_base(target, self.default_base))}/{path}",
        }
        request["query"] = query
        answer = exchange(
            "POST",
            f"{_base(target, self.default_base)}/{path}",
            headers=self._headers(target),
            timeout=target.timeout,
            content=orjson.dumps({"query": query}),
            request=request,
        )
        if isinstance(answer, Outcome):
            host = urlsplit(_base(target, self.default_base)).hostname
            return TestResult(
                ok=False, message=f"cannot reach {host}: {answer.error}", request=request
            )
        response = {"status": answer.status_code, "body": answer.text[:_SNIPPET]}
        if answer.status_code == 200:
            rows = (_json(answer) or {}).get("results") or []
            if not rows:
                return TestResult(
                    ok=False,
                    message=f"no user list {user_list} in customer {customer}",
                    request=request,
                    response=response,
                )
            found = rows[0].get("userList") or {}
            return TestResult(
                ok=True,
                message=f"user list {found.get('name')!r} found "
                f"(about {found.get('sizeForSearch', '?')} people for Search)",
                request=request,
                response=response,
            )
        outcome = google_outcome(answer, request)
        messages = {
            "auth_failed": "the access token or developer token was refused",
            "permission_denied": "this login may not use that customer or list",
            "rate_limited": "Google Ads asks to slow down; try again later",
        }
        message = messages.get(outcome.reason, "Google Ads refused the request")
        return TestResult(
            ok=False, message=f"{message}: {outcome.error}", request=request, response=response
        )


# ---- Meta Custom Audiences ------------------------------------------------------------------

META_SCHEMAS = {"email": "EMAIL_SHA256", "phone": "PHONE_SHA256"}
META_THROTTLE_CODES = {4, 17, 32, 613, *range(80000, 80015)}
META_AUTH_CODES = {102, 190}


@dataclass(slots=True)
class MetaError:
    code: int | None
    subcode: int | None
    type: str
    message: str
    transient: bool


def meta_error(response: httpx.Response) -> MetaError:
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return MetaError(None, None, "", response.text[:200], False)

    def number(value: Any) -> int | None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    return MetaError(
        number(error.get("code")),
        number(error.get("error_subcode")),
        str(error.get("type") or ""),
        str(error.get("message") or ""),
        bool(error.get("is_transient")),
    )


def meta_wait(response: httpx.Response) -> float:
    """How long Meta asks to wait: Retry-After, else the longest estimated_time_to_regain_access
    (minutes) in X-Business-Use-Case-Usage, else a minute."""
    if response.headers.get("retry-after"):
        return parse_retry_after(response.headers["retry-after"], RETRY_AFTER_DEFAULT)
    usage: Any = None
    try:
        usage = orjson.loads(response.headers.get("x-business-use-case-usage") or "null")
    except orjson.JSONDecodeError:
        pass
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in (usage.values() if isinstance(usage, dict) else [])
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict)
    ]
    waits = [float(m) * 60 for m in minutes if isinstance(m, int | float) and m > 0]
    return max(waits) if waits else RETRY_AFTER_DEFAULT


def meta_outcome(response: httpx.Response, request: dict[str, Any]) -> Outcome:
    status = response.status_code
    err = meta_error(response)
    code = err.code
    label = (
        f"code {code}" + (f"/{err.subcode}" if err.subcode else "") if code else f"HTTP {status}"
    )
    error = f"Meta answered {status} ({label}): {err.message}"[:500]
    kw: dict[str, Any] = {
        "status_code": status,
        "response": response.text[:_SNIPPET],
        "request": request,
    }
    if status == 429 or code in META_THROTTLE_CODES:
        return _throttled(response, meta_wait(response), error, request)
    if code in META_AUTH_CODES:
        return Outcome.fail("auth_failed", error, **kw)
    if code == 10 or (code is not None and 200 <= code <= 299):
        return Outcome.fail("permission_denied", error, **kw)
    if status >= 500 or status == 408 or code in (1, 2) or err.transient:
        return Outcome.retry(f"http_{status}", error, **kw)
    if code == 100 and err.subcode == 33:
        return Outcome.fail("not_found", error, **kw)
    return Outcome.fail("invalid_request", error, **kw)


def session_id(items: list[Item], operation: str, schema: str) -> int:
    """The same for a retry of the same deliveries: Meta sees the same upload session."""
    keys = ",".join(sorted(item.key for item in items))
    digest = hashlib.sha256(f"{operation}|{schema}|{keys}".encode()).digest()
    return int.from_bytes(digest[:6], "big") or 1  # 48 bits: safe as a JSON number


class MetaCustomAudience(Connector):
    kind = "meta_custom_audience"
    label = "Meta Custom Audiences"
    description = "Audiences as a customer-list Custom Audience (Marketing API, hashed)."
    identifier_types = ("email", "phone")
    hashed_only = True
    max_batch = 10_000
    default_base: ClassVar[str] = "https://graph.facebook.com/v21.0"
    fields = (
        ConfigField("audience_id", "Custom audience ID", required=True),
        ConfigField("api_base", "API base URL", "url", default=default_base),
        ConfigField(
            "records_per_request",
            "Records per request",
            "int",
            default=META_MAX_RECORDS_PER_REQUEST,
            help=f"at most {META_MAX_RECORDS_PER_REQUEST:,} (Meta's limit)",
        ),
        ConfigField(
            "access_token",
            "Access token",
            "secret",
            required=True,
            help="a system user's token with ads_management",
        ),
    )

    def validate(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, list[str]]:
        errors = super().validate(config, secrets)
        audience = config.get("audience_id")
        if audience not in (None, "") and not str(audience).strip().isdigit():
            errors.setdefault("audience_id", []).append("expected the audience's numeric ID")
        problem = url_problem(config.get("api_base") or self.default_base)
        if problem:
            errors.setdefault("api_base", []).append(problem)
        per = config.get("records_per_request", META_MAX_RECORDS_PER_REQUEST)
        if not _bounded_int(per, 1, META_MAX_RECORDS_PER_REQUEST):
            errors.setdefault("records_per_request", []).append(
                f"expected 1 to {META_MAX_RECORDS_PER_REQUEST}"
            )
        return errors

    def normalise(self, identifier_type: str, value: str) -> str | None:
        if identifier_type == "email":
            return normalise_email(value)
        if identifier_type == "phone":
            e164 = normalize_phone(value.strip())
            # digits with the country code, no "+" (a country code never starts with 0)
            return e164[1:] if e164 else None
        return None

    def _headers(self, target: Target, form: bool) -> dict[str, str]:
        headers = {"authorization": f"Bearer {target.secrets.get('access_token', '')}"}
        if form:
            headers["content-type"] = "application/x-www-form-urlencoded"
        return headers

    def send(self, target: Target, items: list[Item]) -> Outcome:
        changes = plan_changes(items)
        base = _base(target, self.default_base)
        audience = str(target.config.get("audience_id", "")).strip()
        per_request = int(target.config.get("records_per_request") or META_MAX_RECORDS_PER_REQUEST)
        per_request = max(1, min(per_request, META_MAX_RECORDS_PER_REQUEST))
        calls: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "method": "POST",
            "target": f"{display_url(base)}/{audience}/users",
            "items": len(items),
            "calls": calls,
        }
        for method, groups in (("DELETE", changes.remove), ("POST", changes.add)):
            for kind, schema in META_SCHEMAS.items():
                digests = [d for g in groups for d in g.digests.get(kind, [])]
                if not digests:
                    continue
                chunks = list(_chunks(digests, per_request))
                session = session_id(items, method, schema)
                for seq, chunk in enumerate(chunks, start=1):
                    body = urlencode(
                        {
                            "payload": orjson.dumps({"schema": schema, "data": chunk}).decode(),
                            "session": orjson.dumps(
                                {
                                    "session_id": session,
                                    "batch_seq": seq,
                                    "last_batch_flag": seq == len(chunks),
                                    "estimated_num_total": len(digests),
                                }
                            ).decode(),
                        }
                    ).encode()
                    calls.append(
                        {
                            "method": method,
                            "schema": schema,
                            "records": len(chunk),
                            "bytes": len(body),
                        }
                    )
                    answer = exchange(
                        method,
                        f"{base}/{audience}/users",
                        headers=self._headers(target, form=True),
                        timeout=target.timeout,
                        content=body,
                        request=request,
                    )
                    if isinstance(answer, Outcome):
                        return answer
                    calls[-1]["status"] = answer.status_code
                    if not 200 <= answer.status_code < 300:
                        return meta_outcome(answer, request)
                    received = (_json(answer) or {}).get("num_invalid_entries")
                    if received:
                        calls[-1]["invalid_entries"] = received
        return Outcome.success(
            status_code=calls[-1].get("status") if calls else None,
            rejected=changes.rejected,
            request={
                **request,
                "added": sum(g.size() for g in changes.add),
                "removed": sum(g.size() for g in changes.remove),
            },
        )

    def test(self, target: Target) -> TestResult:
        audience = str(target.config.get("audience_id", "")).strip()
        if not audience.isdigit():
            return TestResult(ok=False, message="audience_id is required")
        base = _base(target, self.default_base)
        # approximate_count was replaced by these two bounds in the Marketing API
        fields = "id,name,approximate_count_lower_bound,approximate_count_upper_bound"
        url = f"{base}/{audience}?fields={fields}"
        request = {"method": "GET", "target": f"{display_url(base)}/{audience}", "fields": fields}
        answer = exchange(
            "GET", url, headers=self._headers(target, form=False), timeout=target.timeout
        )
        if isinstance(answer, Outcome):
            host = urlsplit(base).hostname
            return TestResult(
                ok=False, message=f"cannot reach {host}: {answer.error}", request=request
            )
        response = {"status": answer.status_code, "body": answer.text[:_SNIPPET]}
        if answer.status_code == 200:
            found = _json(answer) or {}
            low = found.get("approximate_count_lower_bound", "?")
            high = found.get("approximate_count_upper_bound", "?")
            return TestResult(
                ok=True,
                message=f"audience {found.get('name')!r} found (about {low}–{high} people)",
                request=request,
                response=response,
            )
        outcome = meta_outcome(answer, request)
        messages = {
            "auth_failed": "the access token was refused (invalid or expired)",
            "not_found": f"no custom audience {audience}, or the token cannot see it",
            "permission_denied": "the token lacks the permission (ads_management)",
            "rate_limited": "Meta asks to slow down; try again later",
        }
        message = messages.get(outcome.reason, "Meta refused the request")
        return TestResult(
            ok=False, message=f"{message}: {outcome.error}", request=request, response=response
        )


register(GoogleCustomerMatch())
register(MetaCustomAudience())

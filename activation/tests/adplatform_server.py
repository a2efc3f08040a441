"""A local stand-in for the two ad platforms' public APIs on 127.0.0.1, strict enough to catch
a connector that strays from their documented contracts (see activation.connectors.adplatforms
for the pages):

- Google Ads REST (paths /vNN/…): offlineUserDataJobs:create, {job}:addOperations, {job}:run,
  googleAds:search (user_list by id). Checks the Bearer token and developer-token headers
  (401 UNAUTHENTICATED with authenticationError OAUTH_TOKEN_INVALID / DEVELOPER_TOKEN_INVALID),
  the customer id, the job type and list, one identifier per UserIdentifier, at most 20 per
  UserData and 100,000 per request (TOO_MANY_USER_IDENTIFIERS), lower-case SHA-256 hex
  (INVALID_SHA256_FORMAT, per operation when partial failure is on), no mixing of create and
  remove in a job (CONFLICTING_OPERATION), no operations after run (JOB_ALREADY_STARTED). A
  run applies the job to the list.
- Meta Graph (paths /vNN.N/…): POST and DELETE /{audience_id}/users with `payload` (and
  `session`) form-encoded or JSON, GET /{audience_id}?fields=…. Checks the token (400 code 190
  OAuthException), the schema (EMAIL_SHA256 / PHONE_SHA256, or a multi-key list), at most
  10,000 records, digests only (code 100), the audience (code 100 subcode 33).

Membership is kept per list as a set of digests (`google_lists`, `meta_audiences`); every
request is recorded (`requests`); `then(platform, answer, times)` scripts the next answers of a
platform: "rate_limit" (Google 429 RESOURCE_EXHAUSTED with quotaErrorDetails.retryDelay; Meta
code 80003 with X-Business-Use-Case-Usage, and Retry-After when `retry_after` is given),
"server_error" (500) or "serve" (answer normally: a failure after N good requests)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

GOOGLE_VERSION = "v20"
META_VERSION = "v21.0"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_GOOGLE_PATH = re.compile(r"/(v\d+)/(.*)")
_META_PATH = re.compile(r"/(v\d+\.\d+)/(.*)")
META_SCHEMAS = {"EMAIL_SHA256", "PHONE_SHA256", "MOBILE_ADVERTISER_ID"}
META_MULTI_KEYS = {
    "EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST",
    "ZIP", "MADID", "COUNTRY",
}  # fmt: skip
META_AUDIENCE_FIELDS = {
    "id", "name", "description", "subtype", "approximate_count_lower_bound",
    "approximate_count_upper_bound", "operation_status", "delivery_status", "time_updated",
}  # fmt: skip
GOOGLE_IDENTIFIER_FIELDS = {"hashedEmail": "email", "hashedPhoneNumber": "phone"}


@dataclass
class Request:
    at: float  # time.monotonic() when it arrived
    platform: str  # google | meta | unknown
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    params: Any = None  # the decoded JSON or form body (None: not decodable)

    @property
    def action(self) -> str:
        """The last path segment: "offlineUserDataJobs:create", ":run", "users", …"""
        return self.path.rsplit("/", 1)[-1]


@dataclass
class Job:
    resource_name: str
    user_list: str
    status: str = "PENDING"
    operation: str | None = None  # create | remove, once operations arrived
    operations: list[tuple[str, list[str]]] = field(default_factory=list)
    consent: dict[str, str] = field(default_factory=dict)


class Refused(Exception):  # noqa: N818 - an answer, not a failure of ours
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class AdPlatforms:
    url: str = ""
    google_token: str = "google-oauth-token"  # noqa: S105 - test credentials
    developer_token: str = "google-developer-token"  # noqa: S105
    meta_token: str = "meta-access-token"  # noqa: S105
    google_customers: set[str] = field(default_factory=lambda: {"1234567890"})
    google_lists: dict[str, set[str]] = field(default_factory=lambda: {"555000": set()})
    google_list_names: dict[str, str] = field(default_factory=lambda: {"555000": "CDP members"})
    google_max_identifiers: int = 100_000
    meta_audiences: dict[str, set[str]] = field(default_factory=lambda: {"2385000": set()})
    meta_names: dict[str, str] = field(default_factory=lambda: {"2385000": "CDP members"})
    meta_max_records: int = 10_000
    jobs: dict[str, Job] = field(default_factory=dict)
    sessions: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    script: list[tuple[str, str, float | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def google_base(self) -> str:
        return f"{self.url}/{GOOGLE_VERSION}"

    @property
    def meta_base(self) -> str:
        return f"{self.url}/{META_VERSION}"

    def then(
        self, platform: str, answer: str, times: int = 1, retry_after: float | None = None
    ) -> AdPlatforms:
        """Answer the platform's next `times` requests with `answer` (rate_limit,
        server_error) instead of serving them; "serve" serves them (to script a failure
        after a few good requests)."""
        assert platform in ("google", "meta")
        assert answer in ("rate_limit", "server_error", "serve")
        self.script.extend([(platform, answer, retry_after)] * times)
        return self

    def calls(self, platform: str, method: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.platform == platform and (method is None or r.method == method)
        ]

    # ---- dispatch -------------------------------------------------------------------------

    def handle(self, got: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.requests.append(got)
            try:
                scripted = self._scripted(got)
                if scripted is not None:
                    return scripted
                if got.platform == "google":
                    return 200, self._google(got), {}
                if got.platform == "meta":
                    return 200, self._meta(got), {}
                raise Refused(404, {"error": {"code": 404, "message": "Not Found"}})
            except Refused as refused:
                return refused.status, refused.body, refused.headers

    def _scripted(self, got: Request) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        for n, (platform, answer, retry_after) in enumerate(self.script):
            if platform != got.platform:
                continue
            del self.script[n]
            if answer == "serve":
                return None
            if answer == "server_error":
                if platform == "google":
                    return 500, google_error(500, "INTERNAL", "Internal error encountered."), {}
                body = meta_error(2, "Service temporarily unavailable", "OAuthException")
                body["error"]["is_transient"] = True
                return 500, body, {}
            if platform == "google":
                delay = f"{retry_after if retry_after is not None else 30:g}s"
                body = google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Resource has been exhausted (e.g. check quota).",
                    ("quotaError", "RESOURCE_TEMPORARILY_EXHAUSTED"),
                    details={
                        "quotaErrorDetails": {
                            "rateScope": "ACCOUNT",
                            "rateName": "Number of operations for basic access",
                            "retryDelay": delay,
                        }
                    },
                )
                return 429, body, {}
            headers = {
                "x-business-use-case-usage": orjson.dumps(
                    {
                        "1000001": [
                            {
                                "type": "custom_audience",
                                "call_count": 100,
                                "total_cputime": 12,
                                "total_time": 14,
                                "estimated_time_to_regain_access": 1,
                            }
                        ]
                    }
                ).decode()
            }
            if retry_after is not None:
                headers["retry-after"] = f"{retry_after:g}"
            body = meta_error(
                80003,
                "There have been too many calls to this ad-account. Wait a bit and try again.",
                "OAuthException",
                subcode=2446079,
            )
            return 400, body, headers
        return None

    # ---- Google Ads -------------------------------------------------------------------------

    def _google(self, got: Request) -> dict[str, Any]:
        match = _GOOGLE_PATH.fullmatch(got.path)
        assert match is not None
        version, rest = match.groups()
        if version != GOOGLE_VERSION or got.method != "POST":
            raise Refused(404, google_error(404, "NOT_FOUND", f"{got.method} {got.path}"))
        if got.headers.get("authorization") != f"Bearer {self.google_token}":
            raise Refused(
                401,
                google_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials.",
                    ("authenticationError", "OAUTH_TOKEN_INVALID"),
                ),
            )
        if got.headers.get("developer-token") != self.developer_token:
            raise Refused(
                401,
                google_error(
                    401,
                    "UNAUTHENTICATED",
                    "The developer token is not valid.",
                    ("authenticationError", "DEVELOPER_TOKEN_INVALID"),
                ),
            )
        login = got.headers.get("login-customer-id")
        if login is not None and not re.fullmatch(r"\d{10}", login):
            raise Refused(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "The login customer id header is invalid.",
                    ("headerError", "INVALID_LOGIN_CUSTOMER_ID"),
                ),
            )
        if not got.headers.get("content-type", "").startswith("application/json"):
            raise Refused(400, google_error(400, "INVALID_ARGUMENT", "Expected a JSON body."))
        if not isinstance(got.params, dict):
            raise Refused(400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload."))
        customer_match = re.fullmatch(r"customers/([^/]+)/(.+)", rest)
        if customer_match is None:
            raise Refused(404, google_error(404, "NOT_FOUND", f"{got.method} {got.path}"))
        customer, action = customer_match.groups()
        if not re.fullmatch(r"\d{10}", customer):
            raise Refused(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Client customer ID is not a number.",
                    ("authenticationError", "CLIENT_CUSTOMER_ID_INVALID"),
                ),
            )
        if customer not in self.google_customers:
            raise Refused(
                403,
                google_error(
                    403,
                    "PERMISSION_DENIED",
                    "User doesn't have permission to access customer.",
                    ("authorizationError", "USER_PERMISSION_DENIED"),
                ),
            )
        if action == "offlineUserDataJobs:create":
            return self._google_create(customer, got.params)
        job = re.fullmatch(r"offlineUserDataJobs/(\d+):(addOperations|run)", action)
        if job is not None:
            name = f"customers/{customer}/offlineUserDataJobs/{job.group(1)}"
            if name not in self.jobs:
                raise Refused(404, google_error(404, "NOT_FOUND", f"{name} was not found."))
            if job.group(2) == "run":
                return self._google_run(self.jobs[name], customer)
            return self._google_add(self.jobs[name], got.params)
        if action == "googleAds:search":
            return self._google_search(customer, got.params)
        raise Refused(404, google_error(404, "NOT_FOUND", f"{got.method} {got.path}"))

    def _google_create(self, customer: str, body: dict[str, Any]) -> dict[str, Any]:
        job = body.get("job")
        if not isinstance(job, dict) or set(body) - {"job", "validateOnly"}:
            raise Refused(400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload."))
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST":
            raise Refused(
                400, google_error(400, "INVALID_ARGUMENT", "job.type: expected a known type")
            )
        metadata = job.get("customerMatchUserListMetadata") or {}
        found = re.fullmatch(
            rf"customers/{customer}/userLists/(\d+)", str(metadata.get("userList"))
        )
        if found is None or found.group(1) not in self.google_lists:
            raise Refused(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "The user list ID provided for the job is invalid.",
                    ("offlineUserDataJobError", "INVALID_USER_LIST_ID"),
                ),
            )
        consent = metadata.get("consent") or {}
        allowed = {"GRANTED", "DENIED", "UNSPECIFIED", "UNKNOWN"}
        if not isinstance(consent, dict) or not set(consent.values()) <= allowed:
            raise Refused(400, google_error(400, "INVALID_ARGUMENT", "consent: invalid value"))
        name = f"customers/{customer}/offlineUserDataJobs/{len(self.jobs) + 1001}"
        self.jobs[name] = Job(name, found.group(1), consent=dict(consent))
        return {"resourceName": name}

    def _google_add(self, job: Job, body: dict[str, Any]) -> dict[str, Any]:
        if job.status != "PENDING":
            raise Refused(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Once the upload job is started, new operations cannot be added.",
                    ("offlineUserDataJobError", "JOB_ALREADY_STARTED"),
                ),
            )
        unknown = set(body) - {
            "operations",
            "enablePartialFailure",
            "enableWarnings",
            "validateOnly",
        }
        operations = body.get("operations")
        if unknown or not isinstance(operations, list) or not operations:
            raise Refused(
                400, google_error(400, "INVALID_ARGUMENT", "operations: a non-empty list")
            )
        total = 0
        job_kind = job.operation
        parsed: list[tuple[str, Any]] = []  # (create | remove, digests) or ("error", code)
        for op in operations:
            if (
                not isinstance(op, dict)
                or len(op) != 1
                or next(iter(op)) not in ("create", "remove")
            ):
                raise Refused(
                    400, google_error(400, "INVALID_ARGUMENT", "operation: one of create, remove")
                )
            kind, data = next(iter(op.items()))
            identifiers = (data or {}).get("userIdentifiers") if isinstance(data, dict) else None
            if not isinstance(identifiers, list) or not identifiers:
                parsed.append(("error", "MISSING_USER_IDENTIFIER"))
                continue
            total += len(identifiers)
            if len(identifiers) > 20:
                parsed.append(("error", "TOO_MANY_USER_IDENTIFIERS"))
                continue
            digests: list[str] = []
            problem = ""
            for identifier in identifiers:
                # UserIdentifier is a oneof: exactly one field
                if not isinstance(identifier, dict) or len(identifier) != 1:
                    raise Refused(
                        400,
                        google_error(400, "INVALID_ARGUMENT", "userIdentifiers: one field each"),
                    )
                name, value = next(iter(identifier.items()))
                if name not in GOOGLE_IDENTIFIER_FIELDS:
                    raise Refused(
                        400,
                        google_error(400, "INVALID_ARGUMENT", f'Unknown name "{name}"'),
                    )
                if not isinstance(value, str) or not _DIGEST.fullmatch(value):
                    problem = "INVALID_SHA256_FORMAT"
                digests.append(value)
            job_kind = job_kind or kind
            if kind != job_kind:
                parsed.append(("error", "CONFLICTING_OPERATION"))
                continue
            parsed.append(("error", problem) if problem else (kind, digests))
        if total > self.google_max_identifiers:
            raise Refused(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Maximum number of user identifiers allowed per request is "
                    f"{self.google_max_identifiers:,} and per operation is 20.",
                    ("offlineUserDataJobError", "TOO_MANY_USER_IDENTIFIERS"),
                ),
            )
        failures = [(i, p[1]) for i, p in enumerate(parsed) if p[0] == "error"]
        if failures and not body.get("enablePartialFailure"):
            index, code = failures[0]
            raise Refused(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    f"operations[{index}]: {code}",
                    ("offlineUserDataJobError", str(code)),
                    index=index,
                ),
            )
        for kind, digests in parsed:
            if kind != "error" and isinstance(digests, list):
                job.operation = kind
                job.operations.append((kind, digests))
        if not failures:
            return {}
        status = google_error(400, "INVALID_ARGUMENT", "Multiple errors in operations.")["error"]
        status["code"] = 3  # google.rpc.Code INVALID_ARGUMENT, as partialFailureError has it
        status["details"][0]["errors"] = [
            {
                "errorCode": {"offlineUserDataJobError": code},
                "message": code,
                "location": {"fieldPathElements": [{"fieldName": "operations", "index": i}]},
            }
            for i, code in failures
        ]
        return {"partialFailureError": status}

    def _google_run(self, job: Job, customer: str) -> dict[str, Any]:
        if job.status != "PENDING":
            raise Refused(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "The job was already started.",
                    ("offlineUserDataJobError", "JOB_ALREADY_STARTED"),
                ),
            )
        members = self.google_lists[job.user_list]
        for kind, digests in job.operations:
            if kind == "create":
                members.update(digests)
            else:
                members.difference_update(digests)
        job.status = "SUCCESS"
        return {"name": f"customers/{customer}/operations/{uuid.uuid4().hex[:12]}"}

    def _google_search(self, customer: str, body: dict[str, Any]) -> dict[str, Any]:
        query = str(body.get("query") or "")
        found = re.search(r"FROM\s+user_list\s+WHERE\s+user_list\.id\s*=\s*(\d+)", query)
        if found is None:
            raise Refused(
                400,
                google_error(
                    400, "INVALID_ARGUMENT", "Error in query.", ("queryError", "UNEXPECTED_INPUT")
                ),
            )
        list_id = found.group(1)
        if list_id not in self.google_lists:
            return {"results": [], "fieldMask": "userList.id,userList.name"}
        return {
            "results": [
                {
                    "userList": {
                        "resourceName": f"customers/{customer}/userLists/{list_id}",
                        "id": list_id,
                        "name": self.google_list_names.get(list_id, ""),
                        "sizeForSearch": str(len(self.google_lists[list_id])),
                    }
                }
            ],
            "fieldMask": "userList.id,userList.name,userList.sizeForSearch",
        }

    # ---- Meta -------------------------------------------------------------------------------

    def _meta(self, got: Request) -> dict[str, Any]:
        match = _META_PATH.fullmatch(got.path)
        assert match is not None
        version, rest = match.groups()
        if version != META_VERSION:
            raise Refused(
                400, meta_error(2635, f"Version {version} is not available", "OAuthException")
            )
        token = got.headers.get("authorization", "").removeprefix("Bearer ")
        params = got.params if isinstance(got.params, dict) else {}
        token = token or _first(got.query, "access_token") or str(params.get("access_token") or "")
        if token != self.meta_token:
            raise Refused(
                400,
                meta_error(
                    190, "Invalid OAuth access token - Cannot parse access token", "OAuthException"
                ),
            )
        parts = rest.split("/")
        audience = parts[0]
        if not audience.isdigit() or len(parts) > 2 or (len(parts) == 2 and parts[1] != "users"):
            raise Refused(
                400, meta_error(2500, f"Unknown path components: /{rest}", "OAuthException")
            )
        users = len(parts) == 2
        allowed = ("POST", "DELETE") if users else ("GET",)
        if got.method not in allowed or audience not in self.meta_audiences:
            raise Refused(
                400,
                meta_error(
                    100,
                    f"Unsupported {got.method.lower()} request. Object with ID '{audience}' does "
                    "not exist, cannot be loaded due to missing permissions, or does not support "
                    "this operation.",
                    "GraphMethodException",
                    subcode=33,
                ),
            )
        if not users:
            return self._meta_read(audience, got)
        return self._meta_users(audience, got)

    def _meta_read(self, audience: str, got: Request) -> dict[str, Any]:
        wanted = [f for f in (_first(got.query, "fields") or "id").split(",") if f]
        for name in wanted:
            if name not in META_AUDIENCE_FIELDS:
                raise Refused(
                    400,
                    meta_error(
                        100,
                        f"(#100) Tried accessing nonexisting field ({name}) on node type "
                        "(CustomAudience)",
                        "OAuthException",
                    ),
                )
        size = len(self.meta_audiences[audience])
        values = {
            "id": audience,
            "name": self.meta_names.get(audience, ""),
            "approximate_count_lower_bound": size,
            "approximate_count_upper_bound": size,
        }
        return {name: values.get(name) for name in wanted}

    def _meta_users(self, audience: str, got: Request) -> dict[str, Any]:
        params = got.params if isinstance(got.params, dict) else {}
        payload = _json_param(params.get("payload"))
        if not isinstance(payload, dict):
            raise Refused(
                400, meta_error(100, "(#100) The parameter payload is required", "OAuthException")
            )
        schema = payload.get("schema")
        data = payload.get("data")
        if not isinstance(data, list) or not data:
            raise Refused(
                400, meta_error(100, "(#100) payload.data: a non-empty list", "OAuthException")
            )
        if len(data) > self.meta_max_records:
            raise Refused(
                400,
                meta_error(
                    100,
                    f"(#100) Too many records: at most {self.meta_max_records} at a time",
                    "OAuthException",
                ),
            )
        digests: list[str] = []
        if isinstance(schema, str):
            if schema not in META_SCHEMAS:
                raise Refused(
                    400, meta_error(100, f"(#100) Invalid schema {schema}", "OAuthException")
                )
            for row in data:
                value = row[0] if isinstance(row, list) and len(row) == 1 else row
                digests.append(value if isinstance(value, str) else "")
        elif isinstance(schema, list) and schema and set(schema) <= META_MULTI_KEYS:
            for row in data:
                if not isinstance(row, list) or len(row) != len(schema):
                    raise Refused(
                        400,
                        meta_error(100, "(#100) Each row must match the schema", "OAuthException"),
                    )
                digests.extend(v for v in row if v != "")
        else:
            raise Refused(
                400, meta_error(100, f"(#100) Invalid schema {schema!r}", "OAuthException")
            )
        if not all(isinstance(d, str) and _DIGEST.fullmatch(d) for d in digests):
            raise Refused(
                400,
                meta_error(
                    100,
                    "(#100) Data must be SHA256-hashed (64 lower-case hex characters)",
                    "OAuthException",
                ),
            )
        session = _json_param(params.get("session"))
        session_id: Any = None
        if session is not None:
            ok = (
                isinstance(session, dict)
                and isinstance(session.get("session_id"), int)
                and isinstance(session.get("batch_seq"), int)
                and session["batch_seq"] >= 1
                and isinstance(session.get("last_batch_flag"), bool)
            )
            if not ok:
                raise Refused(400, meta_error(100, "(#100) Invalid session", "OAuthException"))
            session_id = session["session_id"]
            self.sessions.setdefault(session_id, []).append(
                {"method": got.method, "batch_seq": session["batch_seq"], **session}
            )
        members = self.meta_audiences[audience]
        if got.method == "POST":
            members.update(digests)
        else:
            members.difference_update(digests)
        return {
            "audience_id": audience,
            "session_id": str(session_id if session_id is not None else uuid.uuid4().int % 10**15),
            "num_received": len(data),
            "num_invalid_entries": 0,
            "invalid_entry_samples": {},
        }


def google_error(
    status: int,
    canonical: str,
    message: str,
    code: tuple[str, str] | None = None,
    *,
    details: dict[str, Any] | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    """google.rpc.Status as the REST interface answers it, with GoogleAdsFailure details."""
    failure: dict[str, Any] = {"message": message}
    if code is not None:
        failure["errorCode"] = {code[0]: code[1]}
    if details:
        failure["details"] = details
    if index is not None:
        failure["location"] = {"fieldPathElements": [{"fieldName": "operations", "index": index}]}
    return {
        "error": {
            "code": status,
            "message": message,
            "status": canonical,
            "details": [
                {
                    "@type": f"type.googleapis.com/google.ads.googleads.{GOOGLE_VERSION}.errors."
                    "GoogleAdsFailure",
                    "errors": [failure] if code is not None else [],
                    "requestId": uuid.uuid4().hex[:22],
                }
            ],
        }
    }


def meta_error(code: int, message: str, kind: str, *, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = uuid.uuid4().hex[:11]
    return {"error": error}


def _first(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[0]


def _json_param(value: Any) -> Any:
    """Graph parameters arrive form-encoded as JSON strings, or already decoded (JSON body)."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def _decode(content_type: str, body: bytes) -> Any:
    if not body:
        return {}
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


@contextmanager
def ad_platforms(**options: Any) -> Iterator[AdPlatforms]:
    state = AdPlatforms(**options)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            platform = (
                "meta"
                if _META_PATH.fullmatch(parts.path)
                else "google"
                if _GOOGLE_PATH.fullmatch(parts.path)
                else "unknown"
            )
            got = Request(
                at=time.monotonic(),
                platform=platform,
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers=headers,
                body=body,
            )
            got.params = _decode(headers.get("content-type", ""), body)
            status, answer, extra = state.handle(got)
            got.status = status
            payload = orjson.dumps(answer)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json; charset=UTF-8")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve  # noqa: N815 - http.server's naming
        do_POST = _serve  # noqa: N815
        do_DELETE = _serve  # noqa: N815
        do_PUT = _serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()

# ruff: noqa: S608 - SQL from constants and placeholders only
"""`POST|GET /v1/decide`: what should this visitor see?

The fast path is one statement — the workspace's configuration version and the visitor's
decision record, found through the identity index — under a statement timeout (the time
budget); everything else comes from this process's cached configuration (config.py) and the
in-memory engine (engine.py). A store that cannot be read in time gives every placement's
default with `degraded: true` and status 200: a decision never breaks a page.

Two callers: a server key (`Authorization: Bearer sk_…`; every trait the workspace allows)
and a browser with a source's write key (`writeKey` in the body or query, or Basic auth): CORS
to the source's allowed origins only, the browser trait allowlist only, rate-limited per key."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
import redis
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from activation.decisions import config as configs
from activation.decisions import engine, records
from activation.decisions.config import Config, ExperimentConf
from activation.experiments import services as experiments
from activation.models import ServerKey
from cdp import metrics
from cdp.errors import error_body
from cdp.keys import digest_of
from cdp.redis import client
from profiles.collector import cors, keys
from segments.rules import compile as compiler
from segments.rules.evaluate import ProfileFacts

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_NAMES = 50
MAX_ID = 255
KEY_CACHE_SECONDS = 30.0

# memberships and consents change outside the pipeline (publications, scheduled evaluations,
# the consent API): read by index beside the record, never stale
_LIVE = """
       ARRAY(SELECT m.segment_id FROM segments_membership m
             WHERE m.profile_id = {p} AND m.exited_at IS NULL),
       (SELECT jsonb_object_agg(c.purpose, c.status) FROM consent_consentstate c
        WHERE c.profile_id = {p})"""

_READ = f"""SET LOCAL statement_timeout = %(budget)s;
SELECT v.version, x.profile_id, r.profile_id, r.traits, r.computed, r.columns,
       {_LIVE.format(p="x.profile_id")}, r.exposures, r.caps
FROM (SELECT COALESCE((SELECT version FROM activation_decisionstate
                       WHERE workspace_id = %(ws)s), 0) AS version) v
LEFT JOIN LATERAL (
    SELECT i.profile_id FROM profiles_identity i
    WHERE i.workspace_id = %(ws)s
      AND ((i.type = 'user_id' AND i.value = %(user)s)
           OR (i.type = 'anonymous_id' AND i.value = %(anon)s))
    ORDER BY i.type = 'user_id' DESC LIMIT 1
) x ON true
LEFT JOIN activation_decisionrecord r ON r.profile_id = x.profile_id"""

_RECORD = f"""SET LOCAL statement_timeout = %(budget)s;
SELECT r.traits, r.computed, r.columns, {_LIVE.format(p="%(profile)s")}, r.exposures, r.caps
FROM (SELECT 1) one
LEFT JOIN activation_decisionrecord r ON r.profile_id = %(profile)s"""


# a first exposure and its record, in one statement (nothing when one exists: it stands)
_EXPOSE = """
WITH first AS (
    INSERT INTO activation_exposure (experiment_id, workspace_id, profile_id, variant, exposed_at)
    VALUES (%(experiment)s, %(ws)s, %(profile)s, %(variant)s, %(at)s)
    ON CONFLICT (experiment_id, profile_id) DO NOTHING
    RETURNING profile_id
), recorded AS (
    UPDATE activation_decisionrecord r
    SET exposures = r.exposures || jsonb_build_object(%(experiment)s::text, %(variant)s::text)
    FROM first WHERE r.profile_id = first.profile_id
)
SELECT profile_id FROM first"""


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, *, cors_ok: bool = True) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.cors_ok = status, code, message, cors_ok


# ---- callers --------------------------------------------------------------------------------

_server_keys: dict[str, tuple[float, int | None]] = {}
_keys_lock = threading.Lock()


def _server_key_workspace(secret: str) -> int | None:
    digest = digest_of(secret)
    now = time.monotonic()
    hit = _server_keys.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    workspace_id = (
        ServerKey.objects.filter(digest=digest, revoked_at__isnull=True)
        .values_list("workspace_id", flat=True)
        .first()
    )
    with _keys_lock:
        if len(_server_keys) > 10_000:
            _server_keys.clear()
        _server_keys[digest] = (now + KEY_CACHE_SECONDS, workspace_id)
    return workspace_id


def forget_keys() -> None:
    with _keys_lock:
        _server_keys.clear()


def _caller(request: HttpRequest, body: Mapping[str, Any]) -> tuple[int, bool]:
    """(workspace id, browser mode)."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.strip().partition(" ")
    secret = value.strip()
    if scheme.lower() == "bearer" and secret.startswith(f"{ServerKey.KEY_PREFIX}_"):
        workspace_id = _server_key_workspace(secret)
        if workspace_id is None:
            raise Refused(401, "invalid_server_key", "Unknown or revoked server key.")
        return workspace_id, False
    write_key = (
        body.get("writeKey") or request.GET.get("writeKey") or keys.header_write_key(authorization)
    )
    if not isinstance(write_key, str) or not write_key.strip():
        raise Refused(
            401, "missing_key",
            "Send a server key (Authorization: Bearer sk_…) or a source's write key "
            "(writeKey) for browser mode.",
        )  # fmt: skip
    source = keys.lookup(write_key.strip())
    if source is None or not source.enabled:
        raise Refused(401, "invalid_write_key", "Unknown, revoked or disabled write key.")
    origin = request.headers.get("Origin")
    if origin:
        if not source.allowed_origins:
            raise Refused(
                403, "origins_required",
                f"Browser decisions need the source's allowed origins: add {origin} to "
                f"{source.name!r}'s allowed origins.", cors_ok=False,
            )  # fmt: skip
        if not cors.origin_allowed(origin, source.allowed_origins):
            raise Refused(
                403, "origin_not_allowed",
                f"{origin} is not an allowed origin of this source.", cors_ok=False,
            )  # fmt: skip
    if not _within_rate(source.source_id):
        raise Refused(429, "rate_limited", "Too many decisions for this write key; retry soon.")
    return source.workspace_id, True


def _within_rate(source_id: int) -> bool:
    limit = settings.CDP_DECIDE_BROWSER_RATE
    key = f"cdp:decide:{source_id}:{int(time.time())}"
    try:
        pipe = client().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 3)
        used = pipe.execute()[0]
    except redis.RedisError:
        return True  # fail open: a decision is never refused for our own outage
    return int(used) <= limit


# ---- the request ----------------------------------------------------------------------------


def _names(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Refused(400, "invalid_request", f"`{field}` is a list of keys.")
    if len(value) > MAX_NAMES:
        raise Refused(400, "invalid_request", f"`{field}` names at most {MAX_NAMES} keys.")
    return list(dict.fromkeys(value))


def _identifier(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_ID:
        raise Refused(400, "invalid_request", f"`{field}` is a string of at most {MAX_ID}.")
    return value.strip() or None


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refused(400, "invalid_request", f"`{field}` is a JSON object.")
    return value


def _read_body(request: HttpRequest) -> dict[str, Any]:
    if request.method == "GET":
        query = {k: v[-1] for k, v in parse_qs(request.META.get("QUERY_STRING", "")).items()}
        context: dict[str, Any] = {}
        page = {k: query[k] for k in ("url", "path", "referrer") if k in query}
        if page:
            context["page"] = page
        if "locale" in query:
            context["locale"] = query["locale"]
        if "device" in query:
            context["device"] = {"type": query["device"]}
        return {
            "userId": query.get("userId"),
            "anonymousId": query.get("anonymousId"),
            "placements": query.get("placements"),
            "experiments": query.get("experiments", ""),
            "explain": query.get("explain") in ("1", "true"),
            "context": context,
        }
    raw = request.body
    if len(raw) > MAX_BODY:
        raise Refused(413, "too_large", f"A decision request is at most {MAX_BODY} bytes.")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "invalid_json", f"The body is not JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise Refused(400, "invalid_request", "The body is a JSON object.")
    return body


# ---- the store ------------------------------------------------------------------------------


def _budget_ms() -> int:
    return int(settings.CDP_DECIDE_BUDGET_MS)


def _execute(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "budget": _budget_ms()})
        cursor.cursor.nextset()
        row = cursor.fetchone()
        if connection.in_atomic_block:  # the timeout would last as long as the transaction
            cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
    return row


def _loads(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _visitor(
    row: Any, body: Mapping[str, Any], config: Config, context: dict[str, Any]
) -> engine.Visitor:
    profile_id = row[1] if row else None
    user, anon = body.get("userId"), body.get("anonymousId")
    if profile_id is None:
        facts = ProfileFacts(
            id=0, traits=_object(body.get("traits"), "traits"),
            purpose_defaults=config.purpose_defaults, context=context,
        )  # fmt: skip
        return engine.Visitor(None, str(anon or user), facts)
    fields = row[3:10] if row[2] is not None else _build_record(int(profile_id))
    traits, computed, columns, segments, consents, exposures, caps = fields
    facts = ProfileFacts(
        id=int(profile_id),
        traits=_loads(traits) or {},
        computed=_loads(computed) or {},
        columns=_loads(columns) or {},
        segments=frozenset(segments or ()),
        consents=_loads(consents) or {},
        purpose_defaults=config.purpose_defaults,
        context=context,
    )
    return engine.Visitor(
        int(profile_id), str(profile_id), facts, _loads(exposures) or {}, _loads(caps) or {}
    )


def _build_record(profile_id: int) -> tuple[Any, ...]:
    """A live profile without a record yet: build it now (then it is one read away)."""
    with transaction.atomic():
        records.records_build([profile_id])
    row = _execute(_RECORD, {"profile": profile_id})
    assert row is not None  # one row, whether the record exists or not
    return row


def _sql_targeted(workspace_id: int, profile_id: int, now: datetime) -> Any:
    def check(experiment: ExperimentConf) -> bool:
        assert experiment.targeting is not None
        sql, params = compiler.members_query(
            experiment.targeting, workspace_id=workspace_id, now=now, profile_id=profile_id
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() is not None

    return check


# ---- writes after the decision --------------------------------------------------------------


def _expose(
    config: Config, visitor: engine.Visitor, body: Mapping[str, Any], new: engine.NewExposure,
    now: datetime,
) -> None:  # fmt: skip
    experiment, variant = new.experiment, new.variant
    # the event carries the ids the caller sent (they found the profile)
    ids = {
        k: v
        for k, v in (("user_id", body.get("userId")), ("anonymous_id", body.get("anonymousId")))
        if v
    }
    if visitor.profile_id is not None:
        with connection.cursor() as cursor:
            cursor.execute(_EXPOSE, {
                "experiment": experiment.id, "ws": config.workspace_id,
                "profile": visitor.profile_id, "variant": str(variant["key"]), "at": now,
            })  # fmt: skip
            if cursor.fetchone() is None:  # a concurrent decision exposed it first
                return
    experiments.exposure_event(
        workspace_id=config.workspace_id, key=experiment.key, name=experiment.name,
        seed=experiment.seed, variant=variant, at=now, unit=visitor.unit, ids=ids,
    )  # fmt: skip


def _record_impressions(
    config: Config, visitor: engine.Visitor, body: Mapping[str, Any], answer: dict[str, Any],
    request_id: str, now: datetime,
) -> None:  # fmt: skip
    """`record: true`: the offers shown count as viewed, through `Offer Viewed` events (the
    pipeline adds them to the frequency counters)."""
    events = []
    for placement, shown in answer["placements"].items():
        if shown.get("offer"):
            events.append({
                "type": "track", "event": records.OFFER_VIEWED,
                "messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{request_id}:{placement}")),
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "properties": {"offer_id": shown["offer"], "placement": placement},
                **({"userId": body["userId"]} if body.get("userId") else {}),
                **({"anonymousId": body["anonymousId"]} if body.get("anonymousId") else {}),
            })  # fmt: skip
    if events:
        experiments.ingest_own_events(config.workspace_id, events)


# ---- the view -------------------------------------------------------------------------------


def _respond(body: dict[str, Any], status: int, started: float, request_id: str) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
    elapsed = time.perf_counter() - started
    metrics.DECIDE_REQUEST_SECONDS.observe(elapsed)
    if body.get("degraded") is True:
        metrics.DECIDE_DEGRADED.inc()
    response["X-Request-Id"] = request_id
    response["Server-Timing"] = f"app;dur={elapsed * 1000:.2f}"
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@cors.cors
def decide_view(request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    request_id = uuid.uuid4().hex
    if request.method not in ("GET", "POST"):
        refused = Refused(405, "method_not_allowed", "Use POST (or GET for simple cases).")
        return _refusal(refused, started, request_id)
    try:
        body = _read_body(request)
        ask = engine.Ask(
            placements=_names(body.get("placements"), "placements"),
            experiments=_names(body.get("experiments"), "experiments") or [],
            explain=bool(body.get("explain")),
        )
        body = {
            **body,
            "userId": _identifier(body.get("userId"), "userId"),
            "anonymousId": _identifier(body.get("anonymousId"), "anonymousId"),
        }
        context = _object(body.get("context"), "context")
        _object(body.get("traits"), "traits")
    except Refused as refused:
        return _refusal(refused, started, request_id)
    try:
        workspace_id, ask.browser = _caller(request, body)
    except Refused as refused:
        return _refusal(refused, started, request_id)
    except DatabaseError:  # the key could not be checked: nothing personal, defaults only
        logger.warning("decide: key look-up failed", exc_info=True)
        answer = engine.default_answer(None, ask, "default: store unavailable")
        return _respond({**answer, "request_id": request_id}, 200, started, request_id)
    now = timezone.now()
    try:
        row = _execute(
            _READ,
            {"ws": workspace_id, "user": body["userId"] or "", "anon": body["anonymousId"] or ""},
        )
        config = configs.current(workspace_id, int(row[0]) if row else None)
        visitor = _visitor(row, body, config, context)
        configs.learn_segments(config, visitor.facts.segments)
        sql_targeted = (
            _sql_targeted(workspace_id, visitor.profile_id, now)
            if visitor.profile_id is not None
            else None
        )
        decision = engine.decide(config, visitor, ask, now, sql_targeted=sql_targeted)
    except DatabaseError:
        logger.warning("decide: store unavailable, answering defaults", exc_info=True)
        answer = engine.default_answer(
            configs.cached(workspace_id), ask, "default: store unavailable"
        )
        return _respond({**answer, "request_id": request_id}, 200, started, request_id)
    if not (body.get("userId") or body.get("anonymousId")):
        decision.exposures.clear()  # nobody to remember them by
    try:
        recommended = decision.body["recommendations"]
        for key, ids in recommended.items():
            recommended[key] = configs.describe_items(config, ids)
        for new in decision.exposures:
            _expose(config, visitor, body, new, now)
        if body.get("record") is True and visitor.profile_id is not None:
            _record_impressions(config, visitor, body, decision.body, request_id, now)
    except DatabaseError:  # the answer stands; the exposure is recorded at the next decision
        logger.warning("decide: exposure or impression not recorded", exc_info=True)
    return _respond({**decision.body, "request_id": request_id}, 200, started, request_id)


def _refusal(refused: Refused, started: float, request_id: str) -> HttpResponse:
    response = _respond(error_body(refused.code, refused.message), refused.status, started,
                        request_id)  # fmt: skip
    if refused.status == 429:
        response["Retry-After"] = "1"
    if not refused.cors_ok:
        response.cors_refused = True  # type: ignore[attr-defined]
    return response


# ---- the preview (management API and page) --------------------------------------------------


def preview(
    *, workspace_id: int, profile_id: int | None, context: dict[str, Any],
    traits: dict[str, Any], placements: list[str] | None, experiments: list[str],
    browser: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """What `/v1/decide` would answer for this profile (None: an unknown visitor sending
    `traits`) in this context, with every offer's outcome — recording nothing."""
    now = timezone.now()
    config = configs.current(workspace_id, configs.version_of(workspace_id))
    row: tuple[Any, ...] | None = None
    if profile_id is not None:
        fields = _execute(_RECORD, {"profile": profile_id})
        if fields is None or fields[0] is None:
            fields = _build_record(profile_id)
        row = (config.version, profile_id, profile_id, *fields)
    body = {"traits": traits, "anonymousId": "preview"}
    visitor = _visitor(row, body, config, context)
    configs.learn_segments(config, visitor.facts.segments)
    ask = engine.Ask(placements=placements, experiments=experiments, explain=True,
                     browser=browser)  # fmt: skip
    sql_targeted = _sql_targeted(workspace_id, profile_id, now) if profile_id else None
    decision = engine.decide(config, visitor, ask, now, sql_targeted=sql_targeted)
    answer = decision.body
    for key, ids in answer["recommendations"].items():
        answer["recommendations"][key] = configs.describe_items(config, ids)
    return answer

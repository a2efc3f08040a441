"""Shared pytest fixtures (registered by the root conftest.py).

Two workspaces, A and B, each with a user per role, a source and a token, so every test can
also check that B never sees A's data (healthchecks' alice/bob pattern)."""

from __future__ import annotations

import base64
import gzip
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from cdp import queues
from cdp.models import ApiToken, Membership, Role, Workspace
from profiles.collector import keys
from profiles.models import Source, WriteKey

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
SDK_WIRE = FIXTURES / "sdk-wire"
PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - test users only


@dataclass
class Tenant:
    workspace: Workspace
    source: Source
    write_key: str
    users: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, role: str = Role.OWNER) -> Client:
        """A test client authenticated by the personal API token of the user with `role`."""
        return Client(HTTP_AUTHORIZATION=f"Token {self.tokens[role]}")

    def session(self, role: str = Role.OWNER) -> Client:
        client = Client()
        client.force_login(self.users[role])
        return client


def make_tenant(name: str) -> Tenant:
    User = get_user_model()
    workspace = Workspace.objects.create(name=name)
    source = Source.objects.create(workspace=workspace, name=f"{name} app", kind="python")
    write_key = WriteKey.objects.create(source=source, key=f"WK_{name.lower()}_main").key
    tenant = Tenant(workspace=workspace, source=source, write_key=write_key)
    for role in Role.values:
        user = User.objects.create_user(username=f"{role}@{name.lower()}", password=PASSWORD)
        Membership.objects.create(workspace=workspace, user=user, role=role)
        tenant.users[role] = user
        token = ApiToken.objects.create(workspace=workspace, user=user, name="test")
        assert token.secret is not None  # shown by the instance that issued it
        tenant.tokens[role] = token.secret
    return tenant


@pytest.fixture(autouse=True, scope="session")
def _no_persistent_connections() -> None:
    """Live-server request threads must not keep connections open after a test, or the test
    database cannot be flushed/dropped."""
    from django.db import connections

    connections.settings["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True, scope="session")
def _redis_of_this_worker() -> None:
    """Parallel test processes (pytest-xdist) each have their own test database, so the same
    workspace id means different workspaces in each: the Redis state keyed by it (rate
    windows, the door's cached list sizes, kick throttles) must not be shared either. Each
    worker uses its own Redis database (gw0 -> 1, gw1 -> 2, ...)."""
    import os
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings

    from cdp import redis as cdp_redis
    from profiles.collector import gate

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not settings.REDIS_URL.startswith("redis://"):
        return
    parts = urlsplit(settings.REDIS_URL)
    url = urlunsplit(parts._replace(path=f"/{int(worker[2:]) + 1}"))
    settings.REDIS_URL = os.environ["REDIS_URL"] = url
    cdp_redis._client = None
    gate._gate_script = None


@dataclass(frozen=True)
class CeleryTestQueues:
    """The broker queues of one test run: every queue name carries the run's prefix
    (CDP_QUEUE_PREFIX), so runs sharing a broker never take each other's messages."""

    prefix: str

    @property
    def default(self) -> str:
        return self.prefix + queues.CELERY_DEFAULT_QUEUE

    def name(self, queue: str) -> str:
        """The broker name of one of cdp.queues.QUEUES in this run."""
        return queues.broker_queue(queue, prefix=self.prefix, default_queue=self.default)

    def names(self, *which: str) -> list[str]:
        return [self.name(queue) for queue in which or queues.QUEUES]

    def env(self) -> dict[str, str]:
        """For a worker subprocess: the tasks it sends itself (drain fan-out, re-enqueues)
        stay on this run's queues."""
        return {"CDP_QUEUE_PREFIX": self.prefix, "CELERY_TASK_DEFAULT_QUEUE": self.default}


@pytest.fixture(autouse=True, scope="session")
def celery_test_queues(_redis_of_this_worker: None) -> Iterator[CeleryTestQueues]:
    """Tasks sent during tests go to queues of this run only, deleted at the end, so runs
    never leave messages for a real worker (the worker tests consume them)."""
    import redis

    from cdp.celery import app

    test_queues = CeleryTestQueues(prefix=f"cdp-test-{uuid.uuid4().hex[:8]}.")
    previous = {key: app.conf[key] for key in ("task_default_queue", "task_routes")}
    # update() (not attribute assignment) makes Celery rebuild its router
    app.conf.update(
        task_default_queue=test_queues.default,
        task_routes=queues.task_routes(prefix=test_queues.prefix),
    )
    yield test_queues
    app.conf.update(previous)
    names = test_queues.names()
    try:  # on the broker, which keeps its database when the worker's Redis state moves
        redis.Redis.from_url(app.conf.broker_url).delete(
            *names,
            *(f"_kombu.binding.{name}" for name in names),
            *(f"_kombu.binding_permanent.{name}" for name in names),
        )
    except Exception:  # noqa: BLE001, S110 - best-effort clean-up
        pass


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Any:
    keys.forget_all()
    yield
    keys.forget_all()


@pytest.fixture(autouse=True)
def _fresh_redis_state() -> Any:
    """Rate-limit windows and kick throttles are shared across tests through Redis."""
    from cdp.redis import client

    def wipe() -> None:
        r = client()
        for pattern in (
            "cdp:rl:*",
            "cdp:kick:*",
            "cdp:door:*",
            "cdp:tokenfail:*",
            "cdp:overview:*",
        ):
            for key in r.scan_iter(pattern):
                r.delete(key)

    wipe()
    yield
    wipe()


@pytest.fixture
def tenant_a(db: Any) -> Tenant:
    return make_tenant("Alpha")


@pytest.fixture
def tenant_b(db: Any) -> Tenant:
    return make_tenant("Bravo")


def sdk_source(workspace: Workspace, write_key: str, name: str | None = None) -> Source:
    """A source whose key is the one an SDK capture used (e.g. WK_segment_py)."""
    source = Source.objects.create(workspace=workspace, name=name or write_key, kind="http")
    WriteKey.objects.create(source=source, key=write_key)
    return source


def post_collector(
    client: Client,
    path: str,
    body: Any,
    *,
    write_key: str | None = None,
    gzip_body: bool = False,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    extra: dict[str, str] = {}
    if gzip_body:
        raw = gzip.compress(raw)
        extra["HTTP_CONTENT_ENCODING"] = "gzip"
    if write_key is not None:
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        extra["HTTP_AUTHORIZATION"] = f"Basic {token}"
    for name, value in (headers or {}).items():
        extra["HTTP_" + name.upper().replace("-", "_")] = value
    return client.post(path, data=raw, content_type=content_type, **extra)  # type: ignore[arg-type]


def send_events(
    client: Client, tenant: Tenant, *events: dict[str, Any], drain: int | None = 500
) -> list[str]:
    """Post `events` to the collector as one batch (each gets a messageId unless it has one),
    check the 200, then process the queue in batches of `drain` events (None: leave the
    events queued). Returns the messageIds."""
    from profiles.pipeline import queue

    for event in events:
        event.setdefault("messageId", str(uuid.uuid4()))
    response = post_collector(
        client, "/v1/batch", {"batch": list(events)}, write_key=tenant.write_key
    )
    assert response.status_code == 200, response.content
    if drain is not None:
        queue.drain(batch_size=drain)
    return [e["messageId"] for e in events]


def terminate_backend(pid: int) -> None:
    """What a Postgres restart (or a failover) does to an open connection: its server process
    is ended, from a session of its own."""
    params = connection.get_connection_params()
    with psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        password=params.get("password"),
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def terminate_our_backend() -> None:
    """The same for this thread's Django connection."""
    terminate_backend(connection.connection.info.backend_pid)  # type: ignore[union-attr]

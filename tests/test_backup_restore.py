"""Backup and restore, as README "Backup and restore" says to do it: `pg_dump -Fc` of a
populated database, `pg_restore` into a fresh one, and the platform — a separate process
pointed at the restored database with the same secrets — serves the same profiles, segments,
memberships, suppression list and destination secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from activation import services as activation_services
from activation.models import Destination
from consent.services import purposes_install_defaults
from consent.suppression import suppression_add
from profiles.pipeline import queue
from segments.services import segment_create
from tests.fixtures import Tenant, post_collector

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (shutil.which("pg_dump") and shutil.which("pg_restore")),
    reason="pg_dump and pg_restore are needed (Debian: postgresql-client)",
)

# what the restored platform is asked, through its API, by the workspace owner's token
PROBE = """
import json, os
from django.test import Client
from activation.models import Destination
from activation.secrets import decrypt
from consent.suppression import identifier_digest, suppressed_digests

token, segment, workspace, destination = json.loads(os.environ["CDP_PROBE"])
api = Client(HTTP_AUTHORIZATION=f"Token {token}")
out = {
    "profiles": api.get("/api/v1/profiles/", {"page_size": 100, "order": "created"}).json(),
    "segments": api.get("/api/v1/segments/").json(),
    "members": api.get(f"/api/v1/segments/{segment}/members/", {"page_size": 100}).json(),
    "secret": decrypt(Destination.objects.get(pk=destination).secrets_encrypted),
    "suppressed": bool(suppressed_digests(workspace_id=int(workspace), digests=[
        identifier_digest(int(workspace), "email", "gone@example.com")])),
}
print("PROBE" + json.dumps(out, sort_keys=True, default=str))
"""


def _dsn(name: str) -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgresql://{user}{password}@{host}:{port}/{name}"


def _pg_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return env


def _stable(data: dict[str, Any]) -> dict[str, Any]:
    """The answers without what differs between two processes' renderings (absolute
    pagination links carry the same path either way)."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def _populate(tenant: Tenant) -> tuple[int, int]:
    client = Client()
    events = [
        {
            "type": "identify",
            "userId": f"u{i}",
            "traits": {"email": f"p{i}@example.com", "plan": "pro" if i % 2 else "free"},
        }
        for i in range(12)
    ] + [
        {
            "type": "track",
            "userId": f"u{i}",
            "event": "Order Completed",
            "properties": {"revenue": 10 * i},
        }
        for i in range(0, 12, 3)
    ]
    assert (
        post_collector(
            client, "/v1/batch", {"batch": events}, write_key=tenant.write_key
        ).status_code
        == 200
    )
    queue.drain()
    purposes_install_defaults(workspace=tenant.workspace)
    segment = segment_create(
        workspace=tenant.workspace,
        name="Pro",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        actor=tenant.users["owner"],
        publish=True,
    )
    destination, _ = activation_services.destination_create(
        workspace=tenant.workspace,
        data={
            "name": "Hook",
            "kind": "webhook",
            "purpose": "analytics",
            "config": {"url": "http://127.0.0.1:9/hook", "signing_secret": "whsec_" + "B" * 44},
        },
    )
    suppression_add(
        workspace=tenant.workspace, identifier_type="email", normalized_value="gone@example.com"
    )
    return segment.pk, destination.pk


def _probe(database_url: str, tenant: Tenant, segment: int, destination: int) -> dict[str, Any]:
    args = [tenant.tokens["owner"], segment, tenant.workspace.pk, destination]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "CDP_PROBE": json.dumps(args),
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            PROBE,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE"))
    return _stable(json.loads(line[len("PROBE") :]))


def test_a_dump_restored_into_a_fresh_database_serves_the_same_data(
    transactional_db: Any, tenant_a: Tenant, tmp_path: Path
) -> None:
    segment, destination = _populate(tenant_a)
    source = connection.settings_dict["NAME"]
    dump = tmp_path / "cdp.dump"
    subprocess.run(  # noqa: S603
        ["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", _dsn(source)],  # noqa: S607
        check=True,
        env=_pg_env(),
        timeout=120,
    )
    target = f"cdp_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{target}"')
    try:
        subprocess.run(  # noqa: S603
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                f"--dbname={_dsn(target)}",  # noqa: S607
                str(dump),
            ],
            check=True,
            env=_pg_env(),
            timeout=120,
        )
        original = _probe(_dsn(source), tenant_a, segment, destination)
        restored = _probe(_dsn(target), tenant_a, segment, destination)
        assert original["profiles"]["count"] == 12
        assert original["members"]["count"] == 6
        assert original["secret"] == {"signing_secret": "whsec_" + "B" * 44}
        assert original["suppressed"] is True
        assert restored == original
        # and the restored database is the live one's copy, not a view of it
        Destination.objects.filter(pk=destination).delete()
        assert _probe(_dsn(target), tenant_a, segment, destination)["secret"] == original["secret"]
    finally:
        with psycopg.connect(_dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')

"""The files kind: one file per batch with a manifest after it, in a local folder and in an
S3 bucket (a real moto server on 127.0.0.1); a retried batch overwrites its file; errors
are classified (a missing folder or bucket and refused keys fail for good, an unreachable
or overloaded store is retried); "Send test" writes and deletes a probe."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto.core.authorization import enable_iam_authentication
from moto.server import ThreadedMotoServer

from activation import connectors
from activation.delivery import engine
from activation.models import Delivery
from activation.tests.connector_helpers import (
    answering,
    audience_sync,
    closed_port,
    deletion,
    destination,
    event,
    leave,
    statuses,
    target,
    upsert,
)
from activation.tests.helpers import delivery_keys, drain, run
from cdp.errors import ValidationFailed
from tests.fixtures import Tenant

KEYS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "very-secret-value-123"}


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def jsonl_rows(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in gzip.decompress(data).splitlines()]


def data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "manifest" not in p.name)


@pytest.fixture
def files_root(tmp_path: Path, settings: Any) -> Path:
    settings.CDP_FILES_ROOT = str(tmp_path)
    out = tmp_path / "exports"
    out.mkdir()
    return out


# ---- local folder ---------------------------------------------------------------------------


def test_sync_writes_files_with_manifests_then_only_the_changes(
    tenant_a: Tenant, files_root: Path
) -> None:
    dest = destination(tenant_a, "files", {"folder": str(files_root), "prefix": "crm"})
    assert dest.config["format"] == "jsonl" and dest.config["gzip"] is True  # defaults
    sync = audience_sync(tenant_a, dest, 5)
    drain(dest)

    [first] = data_files(files_root)
    assert first.parent == files_root / "crm" / "audiences" and first.name.endswith(".jsonl.gz")
    rows = jsonl_rows(first.read_bytes())
    assert sorted(r["op"] for r in rows) == ["upsert"] * 5
    three = next(r for r in rows if r["identifiers"]["user_id"] == ["user-3"])
    assert three["identifiers"]["email_sha256"] == [sha("person.3@example.com")]
    assert three["fields"] == {"firstName": "P3", "plan": "pro"}
    assert three["audience"] == sync.segment.key
    assert {r["key"] for r in rows} == set(delivery_keys(destination=dest))
    manifest = orjson.loads(Path(str(first) + ".manifest.json").read_bytes())
    assert manifest["rows"] == 5 and manifest["kinds"] == {"upsert": 5}
    assert manifest["bytes"] == first.stat().st_size
    assert manifest["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert not [p for p in files_root.rglob(".*")]  # no temporary file left behind

    leave(tenant_a, "user-0", "user-1")
    delta = run(sync)
    assert delta is not None and delta.removed == 2
    drain(dest)
    files = data_files(files_root)
    assert len(files) == 2 and files[0] == first  # names sort in outbox order
    removed = jsonl_rows(files[1].read_bytes())
    assert sorted(r["identifiers"]["user_id"][0] for r in removed) == ["user-0", "user-1"]
    assert {r["op"] for r in removed} == {"remove"} and all(r["fields"] == {} for r in removed)
    assert run(sync) is None  # nothing changed: nothing planned, no file
    assert len(data_files(files_root)) == 2


def test_a_retried_batch_overwrites_its_file(tenant_a: Tenant, files_root: Path) -> None:
    dest = destination(
        tenant_a, "files", {"folder": str(files_root), "format": "csv", "gzip": False}
    )
    connector = connectors.get("files")
    items = [
        upsert(11, 1, "a@example.com"),
        event(12, 2),
        deletion(13, 3, 4),
    ]
    first = connector.send(target(dest), items)
    again = connector.send(target(dest), list(reversed(items)))
    assert first.ok and again.ok and first.request == again.request
    [written] = data_files(files_root)
    assert written.parent.name == "mixed" and written.name.startswith("000000000011-")
    rows = list(csv.DictReader(io.StringIO(written.read_text())))
    assert [r["op"] for r in rows] == ["upsert", "event", "deletion"]  # the retry's order
    assert list(rows[0]) == [
        "op",
        "key",
        "profile_id",
        "audience",
        "identifiers",
        "fields",
        "event",
    ]
    assert rows[0]["audience"] == "vip" and orjson.loads(rows[0]["fields"]) == {"plan": "pro"}
    assert orjson.loads(rows[1]["event"])["event"] == "Order Completed"
    assert orjson.loads(rows[1]["identifiers"]) == {"user_id": ["user-2"]}
    assert orjson.loads(rows[2]["identifiers"])["profile_id"] == ["3", "4"]
    manifests = list(files_root.rglob("*.manifest.json"))
    assert len(manifests) == 1
    assert orjson.loads(manifests[0].read_bytes())["kinds"] == {
        "upsert": 1,
        "event": 1,
        "deletion": 1,
    }


def test_folder_rules_and_errors(tenant_a: Tenant, files_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as outside:
        destination(tenant_a, "files", {"folder": "/etc"})
    assert "under" in outside.value.fields["config.folder"][0]
    with pytest.raises(ValidationFailed) as sneaky:
        destination(tenant_a, "files", {"folder": str(files_root / ".." / ".." / "x")})
    assert "config.folder" in sneaky.value.fields
    with pytest.raises(ValidationFailed) as both:
        destination(tenant_a, "files", {"folder": str(files_root), "bucket": "b-1", **KEYS})
    assert both.value.fields["config.folder"] == ["set either a local folder or an S3 bucket"]
    with pytest.raises(ValidationFailed) as bad:
        destination(
            tenant_a, "files", {"folder": str(files_root), "prefix": "../up", "format": "xml"}
        )
    assert set(bad.value.fields) == {"config.prefix", "config.format"}

    # a folder that went away, or is a file: a dead letter after one attempt, clearly said
    gone = files_root / "gone"
    gone.mkdir()
    dest = destination(tenant_a, "files", {"folder": str(gone)}, name="Gone")
    audience_sync(tenant_a, dest, 2)
    gone.rmdir()
    drain(dest)
    assert statuses(dest) == [("dead", "folder_missing", 1)] * 2
    assert all("does not exist" in e for e in Delivery.objects.values_list("error", flat=True))
    plain = files_root / "plain"
    plain.write_text("not a folder")
    other = destination(tenant_a, "files", {"folder": str(plain)}, name="Plain")
    refused = connectors.get("files").send(target(other), [event(1, 1)])
    assert (refused.retryable, refused.reason) == (False, "folder_missing")
    assert refused.error == f"{plain} is not a folder on this server"


def test_send_test_locally(tenant_a: Tenant, files_root: Path) -> None:
    dest = destination(tenant_a, "files", {"folder": str(files_root)})
    connector = connectors.get("files")
    result = connector.test(target(dest))
    assert result.ok and "wrote and deleted the test file" in result.message
    assert not data_files(files_root)
    files_root.rmdir()
    missing = connector.test(target(dest))
    assert not missing.ok and "does not exist" in missing.message


# ---- S3 (a moto server) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3(endpoint: str, **keys: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys.get("access_key_id", KEYS["access_key_id"]),
        aws_secret_access_key=keys.get("secret_access_key", KEYS["secret_access_key"]),
    )


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"cdp-test-{uuid.uuid4().hex[:12]}"
    s3(s3_endpoint).create_bucket(Bucket=name)
    return name


def objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3(endpoint)
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
    }


def s3_config(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {"bucket": bucket, "endpoint_url": endpoint, "prefix": "cdp/out", **KEYS, **extra}


def test_sync_to_s3_and_a_retry_does_not_duplicate(
    tenant_a: Tenant, s3_endpoint: str, bucket: str
) -> None:
    dest = destination(tenant_a, "files", s3_config(s3_endpoint, bucket))
    assert dest.config["region"] == "us-east-1"
    assert "secret_access_key" not in dest.config  # stored encrypted, not in the settings
    sync = audience_sync(tenant_a, dest, 4)
    drain(dest)
    stored = objects(s3_endpoint, bucket)
    assert len(stored) == 2
    [name] = [k for k in stored if not k.endswith(".manifest.json")]
    assert name.startswith("cdp/out/audiences/") and name.endswith(".jsonl.gz")
    rows = jsonl_rows(stored[name])
    assert sorted(r["identifiers"]["user_id"][0] for r in rows) == [f"user-{i}" for i in range(4)]
    manifest = orjson.loads(stored[name + ".manifest.json"])
    assert manifest["rows"] == 4 and manifest["sha256"] == hashlib.sha256(stored[name]).hexdigest()

    leave(tenant_a, "user-2")
    run(sync)
    drain(dest)
    stored = objects(s3_endpoint, bucket)
    assert len(stored) == 4
    removal = [r for k, v in stored.items() if not k.endswith(".json") for r in jsonl_rows(v)]
    assert [r["identifiers"]["user_id"] for r in removal if r["op"] == "remove"] == [["user-2"]]

    connector = connectors.get("files")
    items = [upsert(900, 1, "x@example.com"), upsert(901, 2, "y@example.com")]
    for _ in range(2):  # the engine retries a batch with the same keys
        outcome = connector.send(target(dest), items)
        assert outcome.ok and outcome.request["target"].startswith(f"s3://{bucket}/cdp/out/")
    assert len(objects(s3_endpoint, bucket)) == 6
    assert KEYS["secret_access_key"] not in orjson.dumps(outcome.request).decode()


def test_s3_permanent_errors(tenant_a: Tenant, s3_endpoint: str, bucket: str) -> None:
    missing = destination(
        tenant_a, "files", s3_config(s3_endpoint, "no-such-bucket-here"), name="Missing"
    )
    audience_sync(tenant_a, missing, 2)
    drain(missing)
    assert statuses(missing) == [("dead", "s3_no_such_bucket", 1)] * 2

    connector = connectors.get("files")
    iam = boto3.client("iam", endpoint_url=s3_endpoint, region_name="us-east-1", **_aws(KEYS))
    user = iam.create_user(UserName=f"nobody-{uuid.uuid4().hex[:6]}")["User"]["UserName"]
    key = iam.create_access_key(UserName=user)["AccessKey"]  # a user with no policy at all
    unknown = destination(
        tenant_a,
        "files",
        s3_config(s3_endpoint, bucket, access_key_id="AKIAUNKNOWN00000000"),
        name="Unknown key",
    )
    powerless = destination(
        tenant_a,
        "files",
        s3_config(
            s3_endpoint,
            bucket,
            access_key_id=key["AccessKeyId"],
            secret_access_key=key["SecretAccessKey"],
        ),
        name="No permission",
    )
    with enable_iam_authentication():  # moto checks keys and policies from here on
        refused = connector.send(target(unknown), [event(1, 1)])
        denied = connector.send(target(powerless), [event(1, 1)])
        tested = connector.test(target(powerless))
    assert (refused.ok, refused.retryable, refused.reason) == (
        False,
        False,
        "s3_invalid_access_key",
    )
    assert (denied.ok, denied.retryable, denied.reason) == (False, False, "s3_access_denied")
    assert key["SecretAccessKey"] not in denied.error + orjson.dumps(denied.request).decode()
    assert not tested.ok and "AccessDenied" in tested.message


def _aws(keys: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": keys["access_key_id"],
        "aws_secret_access_key": keys["secret_access_key"],
    }


def test_s3_unreachable_or_overloaded_is_retried(tenant_a: Tenant) -> None:
    connector = connectors.get("files")
    down = destination(
        tenant_a, "files", s3_config(f"http://127.0.0.1:{closed_port()}", "b-down"), name="Down"
    )
    outcome = connector.send(target(down), [event(1, 1)])
    assert (outcome.retryable, outcome.reason) == (True, "connection_error")

    slow_down = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )
    with answering(503, slow_down) as url:
        busy = destination(tenant_a, "files", s3_config(url, "b-busy"), name="Busy")
        audience_sync(tenant_a, busy, 1)
        engine.deliver(busy.pk, budget=1)
        assert statuses(busy) == [("pending", "s3_slow_down", 1)]  # back off, then again
        assert "reduce your request rate" in Delivery.objects.get(destination=busy).error
    with answering(500, b"<Error><Code>InternalError</Code></Error>") as url:
        broken = destination(tenant_a, "files", s3_config(url, "b-500"), name="Broken")
        failed = connector.send(target(broken), [event(1, 1)])
        assert (failed.retryable, failed.reason, failed.status_code) == (
            True,
            "s3_internal_error",
            500,
        )


def test_s3_send_test_and_validation(tenant_a: Tenant, s3_endpoint: str, bucket: str) -> None:
    dest = destination(tenant_a, "files", s3_config(s3_endpoint, bucket))
    connector = connectors.get("files")
    result = connector.test(target(dest))
    assert result.ok and result.message.startswith(
        f"wrote and deleted the test file s3://{bucket}/"
    )
    assert objects(s3_endpoint, bucket) == {}
    missing = destination(tenant_a, "files", s3_config(s3_endpoint, "nope-bucket"), name="Nope")
    failed = connector.test(target(missing))
    assert not failed.ok and "NoSuchBucket" in failed.message
    unreachable = destination(
        tenant_a, "files", s3_config(f"http://127.0.0.1:{closed_port()}", bucket), name="Off"
    )
    off = connector.test(target(unreachable))
    assert not off.ok and "cannot reach the S3 endpoint" in off.message

    errors = connector.validate(
        {"bucket": "Bad_Bucket", "endpoint_url": "http://user:pw@minio:9000", "region": "x y"},
        {},
    )
    assert set(errors) == {
        "bucket",
        "endpoint_url",
        "region",
        "access_key_id",
        "secret_access_key",
    }
    assert errors["endpoint_url"] == ["no credentials in the URL: use the access key fields"]

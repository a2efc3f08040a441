"""Files: each batch of deliveries becomes one file — CSV or JSON Lines, gzip optional — in
a local folder or an S3-compatible bucket, with a manifest written after it.

- A file's name comes from its items (the lowest delivery id, for ordering, and a SHA-256
  of the sorted idempotency keys), never from the clock: a retried batch writes the same
  name and overwrites its earlier copy instead of adding a duplicate. A retry that claims
  a different set of rows writes another file; every row carries its `key`, so a reader
  that loads several files deduplicates on it.
- Writes are atomic: a local file is written to a temporary name in the same folder,
  fsynced and renamed; an S3 PUT is atomic by itself. `<file>.manifest.json` (rows, bytes,
  sha256, kinds, created) is written after the data file: a reader that sees a manifest
  knows its file is complete.
- Rows, one per item, with the same columns in both formats (CSV encodes the objects as
  JSON): op (upsert | remove | event | deletion), key, profile_id, audience (the audience
  key of an upsert or remove), identifiers (an upsert's full set; what a removal takes
  away; a deletion's profile ids and identifier digests; an event's user and anonymous
  ids), fields and event (the event itself)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from django.conf import settings

from activation.connectors import register
from activation.connectors.base import (
    ConfigField,
    Connector,
    Item,
    Outcome,
    Target,
    TestResult,
    scrub,
)
from activation.connectors.httpclient import display_url, url_problem

FORMATS = ("jsonl", "csv")
COLUMNS = ("op", "key", "profile_id", "audience", "identifiers", "fields", "event")
CATEGORIES = {
    "upsert": "audiences",
    "remove": "audiences",
    "event": "events",
    "deletion": "deletions",
}
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}

_PREFIX_OK = re.compile(r"^[A-Za-z0-9._=\-/]*$")
_BUCKET_OK = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_REGION_OK = re.compile(r"^[a-z0-9\-]{1,32}$")


# ---- rows and files -------------------------------------------------------------------------


def row_of(item: Item) -> dict[str, Any]:
    payload = item.payload
    row: dict[str, Any] = {
        "op": item.kind,
        "key": item.key,
        "profile_id": item.profile_id,
        "audience": None,
        "identifiers": {},
        "fields": {},
        "event": None,
    }
    if item.kind in ("upsert", "remove"):
        row["audience"] = (payload.get("audience") or {}).get("key")
        # a removal's `identifiers` is empty: what goes is what the destination held
        row["identifiers"] = payload.get("identifiers" if item.kind == "upsert" else "removed")
        row["fields"] = payload.get("fields") or {}
    elif item.kind == "deletion":
        row["identifiers"] = {
            "profile_id": [str(p) for p in payload.get("profile_ids") or []],
            **(payload.get("identifiers") or {}),
        }
    else:
        row["identifiers"] = {
            name: [str(payload[field])]
            for name, field in (("user_id", "userId"), ("anonymous_id", "anonymousId"))
            if payload.get(field)
        }
        row["event"] = payload
    row["identifiers"] = row["identifiers"] or {}
    return row


def encode(rows: list[dict[str, Any]], fmt: str, compress: bool) -> bytes:
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in COLUMNS])
        data = text.getvalue().encode()
    else:
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    # mtime=0: the same batch gives the same bytes, so a retry's sha256 matches too
    return gzip.compress(data, mtime=0) if compress else data


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def file_name(items: list[Item], fmt: str, compress: bool) -> str:
    """`<category>/<lowest outbox row id>-<hash of the sorted keys>.<ext>`: the same batch
    always gets the same name; names sort in outbox order."""
    kinds = {CATEGORIES.get(item.kind, "other") for item in items}
    category = kinds.pop() if len(kinds) == 1 else "mixed"
    digest = hashlib.sha256(",".join(sorted(item.key for item in items)).encode()).hexdigest()
    first = min(item.position for item in items)[0]
    return f"{category}/{first:012d}-{digest[:24]}.{fmt}{'.gz' if compress else ''}"


def manifest(name: str, data: bytes, rows: list[dict[str, Any]], fmt: str) -> bytes:
    return orjson.dumps(
        {
            "file": name.rsplit("/", 1)[-1],
            "format": fmt,
            "compression": "gzip" if name.endswith(".gz") else None,
            "columns": list(COLUMNS),
            "rows": len(rows),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "kinds": dict(Counter(row["op"] for row in rows)),
            "created": datetime.now(UTC).isoformat(),
        },
        option=orjson.OPT_INDENT_2,
    )


# ---- storage --------------------------------------------------------------------------------


class StorageError(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class Storage(Protocol):
    def where(self, name: str) -> str: ...
    def put(self, name: str, data: bytes, content_type: str) -> None: ...
    def delete(self, name: str) -> None: ...


def _join(prefix: str, name: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


@dataclass(slots=True)
class LocalFolder:
    folder: Path
    prefix: str

    def where(self, name: str) -> str:
        return str(self.folder / _join(self.prefix, name))

    def check(self) -> None:
        problem = folder_problem(str(self.folder))
        if problem:
            raise StorageError(Outcome.fail("folder_not_allowed", f"folder: {problem}"))
        if not self.folder.is_dir():
            problem = "is not a folder" if self.folder.exists() else "does not exist"
            raise StorageError(
                Outcome.fail("folder_missing", f"{self.folder} {problem} on this server")
            )
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise StorageError(
                Outcome.fail("folder_not_writable", f"the CDP cannot write to {self.folder}")
            )

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.check()
        path = Path(self.where(name))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            try:
                with open(temporary, "xb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
            # the rename itself is durable once the folder's entry is
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except PermissionError as exc:
            raise StorageError(
                Outcome.fail("folder_not_writable", f"cannot write {path}: {exc.strerror}")
            ) from exc
        except OSError as exc:
            # a full or briefly unavailable disk recovers; a read-only one does not
            reason, retry = {28: ("disk_full", True), 30: ("read_only", False)}.get(
                exc.errno or 0, ("io_error", True)
            )
            outcome = Outcome.retry if retry else Outcome.fail
            raise StorageError(outcome(reason, f"cannot write {path}: {exc}")) from exc

    def delete(self, name: str) -> None:
        try:
            Path(self.where(name)).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(Outcome.fail("io_error", f"cannot delete: {exc}")) from exc


_clients: dict[tuple[str, str, str, str], Any] = {}
_clients_lock = threading.Lock()


def s3_client(
    *, endpoint_url: str, region: str, access_key_id: str, secret_access_key: str, timeout: float
) -> Any:
    """One boto3 client per store and credentials (clients are thread-safe; making one costs
    tens of milliseconds). Retries are the delivery engine's, not botocore's."""
    import boto3
    from botocore.config import Config

    cache_key = (
        endpoint_url,
        region,
        access_key_id,
        hashlib.sha256(f"{secret_access_key}|{timeout}".encode()).hexdigest(),
    )
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url or None,
                region_name=region or "us-east-1",
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=Config(
                    connect_timeout=timeout,
                    read_timeout=timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    # S3-compatible stores want path-style URLs and no streaming checksums
                    s3={"addressing_style": "path"} if endpoint_url else None,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
            _clients[cache_key] = client
        return client


# S3 error codes a retry cannot fix, with our reasons; any 5xx and these others are retried
_S3_PERMANENT = {
    "NoSuchBucket": "s3_no_such_bucket",
    "AccessDenied": "s3_access_denied",
    "AllAccessDisabled": "s3_access_denied",
    "InvalidAccessKeyId": "s3_invalid_access_key",
    "SignatureDoesNotMatch": "s3_invalid_secret_key",
    "InvalidBucketName": "s3_invalid_bucket_name",
    "PermanentRedirect": "s3_wrong_region",
    "AuthorizationHeaderMalformed": "s3_wrong_region",
}
_S3_RETRY = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}


def s3_outcome(exc: Exception, where: str) -> Outcome:
    from botocore import exceptions as boto

    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"S3 answered {code or status} for {where}: {error.get('Message') or exc}"
        reason = _S3_PERMANENT.get(code) or "s3_" + re.sub(r"(?<!^)(?=[A-Z])", "_", code).lower()
        if code in _S3_RETRY or status >= 500 or status in (408, 429):
            return Outcome.retry(reason, message, status_code=status or None)
        return Outcome.fail(reason, message, status_code=status or None)
    if isinstance(exc, boto.ConnectTimeoutError | boto.ReadTimeoutError):
        return Outcome.retry("timeout", f"no answer from the S3 endpoint ({exc})")
    if isinstance(exc, boto.SSLError):
        return Outcome.retry("tls_error", f"TLS handshake with the S3 endpoint failed: {exc}")
    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectionClosedError):
        return Outcome.retry("connection_error", f"cannot reach the S3 endpoint: {exc}")
    if isinstance(exc, boto.NoCredentialsError | boto.ParamValidationError):
        return Outcome.fail("invalid_config", f"S3 refused the request before sending: {exc}")
    return Outcome.retry("s3_error", f"{type(exc).__name__}: {exc}")


@dataclass(slots=True)
class Bucket:
    bucket: str
    prefix: str
    client: Any

    def where(self, name: str) -> str:
        return f"s3://{self.bucket}/{_join(self.prefix, name)}"

    def endpoint(self) -> str:
        url = self.client.meta.endpoint_url
        return display_url(url) if url else ""

    def put(self, name: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=_join(self.prefix, name),
                Body=data,
                ContentType=content_type,
            )
        except Exception as exc:  # noqa: BLE001 - classified, not swallowed
            raise StorageError(s3_outcome(exc, self.where(name))) from exc

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=_join(self.prefix, name))
        except Exception as exc:  # noqa: BLE001 - classified, not swallowed
            raise StorageError(s3_outcome(exc, self.where(name))) from exc


# ---- validation -----------------------------------------------------------------------------


def folder_problem(folder: Any) -> str | None:
    if not isinstance(folder, str) or not folder.strip():
        return "required"
    if "\x00" in folder or not os.path.isabs(folder):
        return "expected an absolute path on the CDP server"
    root = settings.CDP_FILES_ROOT
    if root:
        # resolved, so neither ".." nor a symbolic link leads out of the root
        real_root, real = os.path.realpath(root), os.path.realpath(folder)
        if os.path.commonpath([real_root, real]) != real_root:
            return f"must lie under {root} (CDP_FILES_ROOT)"
    return None


def prefix_problem(prefix: Any) -> str | None:
    if prefix in (None, ""):
        return None
    if not isinstance(prefix, str) or not _PREFIX_OK.match(prefix):
        return "letters, digits and . _ = - / only"
    if any(part in (".", "..") for part in prefix.split("/")):
        return "no . or .. path segments"
    return None


def _scrub(text: str, target: Target) -> str:
    return scrub(text, target.secrets)


class Files(Connector):
    kind = "files"
    label = "Files (local folder or S3)"
    description = "Audience changes and events as CSV or JSON Lines files, one per batch."
    fields = (
        ConfigField(
            "folder",
            "Local folder",
            help="an absolute path on the CDP server (under CDP_FILES_ROOT when that is set); "
            "leave empty to write to S3",
        ),
        ConfigField(
            "bucket", "S3 bucket", help="the bucket name; leave empty to write to a local folder"
        ),
        ConfigField(
            "prefix", "Path prefix", default="", help="e.g. cdp/exports; files go in subfolders"
        ),
        ConfigField(
            "endpoint_url",
            "S3 endpoint URL",
            "url",
            help="for S3-compatible stores (MinIO, Ceph, R2…); empty for Amazon S3",
        ),
        ConfigField("region", "S3 region", default="us-east-1"),
        ConfigField("format", "Format", "choice", default="jsonl", choices=FORMATS),
        ConfigField("gzip", "Gzip files", "bool", default=True),
        ConfigField("access_key_id", "S3 access key ID", "secret"),
        ConfigField("secret_access_key", "S3 secret access key", "secret"),
    )

    def validate(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, list[str]]:
        errors = super().validate(config, secrets)
        folder, bucket = config.get("folder") or "", config.get("bucket") or ""
        if bool(folder) == bool(bucket):
            errors.setdefault("folder", []).append("set either a local folder or an S3 bucket")
        elif folder:
            problem = folder_problem(folder)
            if problem:
                errors.setdefault("folder", []).append(problem)
        else:
            if not isinstance(bucket, str) or not _BUCKET_OK.match(bucket) or ".." in bucket:
                errors.setdefault("bucket", []).append(
                    "3 to 63 lower-case letters, digits, dots and hyphens"
                )
            for name in ("access_key_id", "secret_access_key"):
                if not secrets.get(name):
                    errors.setdefault(name, []).append("required for S3")
            endpoint = config.get("endpoint_url")
            if endpoint:
                problem = url_problem(endpoint)
                if not problem and urlsplit(str(endpoint)).username:
                    problem = "no credentials in the URL: use the access key fields"
                if problem:
                    errors.setdefault("endpoint_url", []).append(problem)
            region = config.get("region")
            if region and (not isinstance(region, str) or not _REGION_OK.match(region)):
                errors.setdefault("region", []).append("e.g. us-east-1")
        problem = prefix_problem(config.get("prefix"))
        if problem:
            errors.setdefault("prefix", []).append(problem)
        if config.get("format", "jsonl") not in FORMATS:
            errors.setdefault("format", []).append("expected jsonl or csv")
        if not isinstance(config.get("gzip", True), bool):
            errors.setdefault("gzip", []).append("expected true or false")
        return errors

    def storage(self, target: Target) -> Storage:
        config = target.config
        if config.get("bucket"):
            client = s3_client(
                endpoint_url=str(config.get("endpoint_url") or ""),
                region=str(config.get("region") or "us-east-1"),
                access_key_id=target.secrets.get("access_key_id", ""),
                secret_access_key=target.secrets.get("secret_access_key", ""),
                timeout=target.timeout,
            )
            return Bucket(str(config["bucket"]), str(config.get("prefix") or ""), client)
        return LocalFolder(Path(str(config.get("folder") or "")), str(config.get("prefix") or ""))

    def _invalid(self, target: Target) -> Outcome | None:
        errors = self.validate(target.config, target.secrets)
        if not errors:
            return None
        text = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(errors.items()))
        return Outcome.fail("invalid_config", f"invalid settings: {text}")

    def send(self, target: Target, items: list[Item]) -> Outcome:
        invalid = self._invalid(target)
        if invalid:
            return invalid
        items = sorted(items, key=lambda item: item.position)  # a retry's bytes are the same
        fmt = str(target.config.get("format") or "jsonl")
        compress = bool(target.config.get("gzip", True))
        rows = [row_of(item) for item in items]
        data = encode(rows, fmt, compress)
        name = file_name(items, fmt, compress)
        storage = self.storage(target)
        request = {
            "method": "PUT",
            "target": storage.where(name),
            "items": len(items),
            "rows": len(rows),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if isinstance(storage, Bucket):
            request["endpoint"] = storage.endpoint()
        content_type = "application/gzip" if compress else CONTENT_TYPES[fmt]
        try:
            storage.put(name, data, content_type)
            storage.put(
                name + ".manifest.json", manifest(name, data, rows, fmt), "application/json"
            )
        except StorageError as exc:
            outcome = exc.outcome
            outcome.error = _scrub(outcome.error, target)
            outcome.request = request
            return outcome
        return Outcome.success(request=request, response=f"wrote {storage.where(name)}")

    def test(self, target: Target) -> TestResult:
        invalid = self._invalid(target)
        if invalid:
            return TestResult(ok=False, message=invalid.error)
        try:
            storage = self.storage(target)
        except Exception as exc:  # noqa: BLE001 - the test button reports, never raises
            return TestResult(ok=False, message=_scrub(f"cannot set up the client: {exc}", target))
        name = f"_cdp_probe-{secrets.token_hex(8)}.txt"
        where = storage.where(name)
        request = {"method": "PUT", "target": where}
        try:
            storage.put(name, b"Test from the CDP: this destination works.\n", "text/plain")
        except StorageError as exc:
            return TestResult(ok=False, message=_scrub(exc.outcome.error, target), request=request)
        try:
            storage.delete(name)
        except StorageError as exc:
            return TestResult(
                ok=True,
                message=_scrub(
                    f"wrote the test file {where} but could not delete it "
                    f"({exc.outcome.error}); remove it by hand",
                    target,
                ),
                request=request,
            )
        return TestResult(
            ok=True, message=f"wrote and deleted the test file {where}", request=request
        )


register(Files())

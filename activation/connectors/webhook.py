"""Webhook: a JSON POST of a batch of deliveries, signed with the Standard Webhooks scheme
(https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. Each item carries its
delivery's idempotency key as `id`, so a receiver deduplicates retries item by item; the
`webhook-id` of a batch is derived from its items' keys (a retried batch has the same one)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson

from activation.connectors import register
from activation.connectors.base import (
    ConfigField,
    Connector,
    Item,
    Outcome,
    Target,
    TestResult,
)
from activation.connectors.httpclient import display_url, post, url_problem

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret

ITEM_TYPES = {
    "upsert": "audience.upsert",
    "remove": "audience.remove",
    "event": "event",
    "deletion": "privacy.deletion",
}


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :])
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance: int = 300) -> bool:
    """What a receiver does (used by our tests and documented for users)."""
    message_id = headers.get("webhook-id", "")
    try:
        timestamp = int(headers.get("webhook-timestamp", ""))
    except ValueError:
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, message_id, timestamp, body).split(",", 1)[1]
    for candidate in headers.get("webhook-signature", "").split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def batch_id(items: list[Item]) -> str:
    if len(items) == 1:
        return "msg_" + items[0].key.replace("-", "")
    keys = ",".join(item.key for item in items)
    return "msg_" + hashlib.sha256(keys.encode()).hexdigest()[:32]


class Webhook(Connector):
    kind = "webhook"
    label = "Webhook"
    description = "JSON POST to your endpoint, batched and signed (Standard Webhooks)."
    fields = (
        ConfigField("url", "Endpoint URL", "url", required=True, help="https://…"),
        ConfigField(
            "headers", "Extra headers", "json", default={}, help='e.g. {"X-Team": "growth"}'
        ),
        ConfigField(
            "signing_secret",
            "Signing secret",
            "secret",
            help="whsec_… (Standard Webhooks); generated when left empty, shown once",
        ),
        ConfigField(
            "authorization",
            "Authorization header",
            "secret",
            help='sent as "Authorization", e.g. "Bearer …"',
        ),
    )

    def validate(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, list[str]]:
        errors = super().validate(config, secrets)
        problem = url_problem(config.get("url"))
        if problem and "url" not in errors:
            errors["url"] = [problem]
        headers = config.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            errors["headers"] = ["expected an object of header names to string values"]
        elif any(k.lower().startswith("webhook-") for k in headers):
            errors["headers"] = ["webhook-* headers are set by the signature"]
        return errors

    def body(self, items: list[Item], message_id: str) -> bytes:
        return orjson.dumps(
            {
                "id": message_id,
                "type": "batch",
                "items": [
                    {
                        "id": item.key,
                        "type": ITEM_TYPES.get(item.kind, item.kind),
                        "profile_id": item.profile_id,
                        "data": item.payload,
                    }
                    for item in items
                ],
            }
        )

    def send(self, target: Target, items: list[Item]) -> Outcome:
        url = str(target.config.get("url", "")).strip()
        message_id = batch_id(items)
        body = self.body(items, message_id)
        timestamp = int(time.time())
        headers = {
            **{str(k): str(v) for k, v in (target.config.get("headers") or {}).items()},
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
        }
        secret = target.secrets.get("signing_secret")
        if secret:
            headers["webhook-signature"] = sign(secret, message_id, timestamp, body)
        if target.secrets.get("authorization"):
            headers["authorization"] = target.secrets["authorization"]
        request = {
            "method": "POST",
            "target": display_url(url),
            "webhook_id": message_id,
            "items": len(items),
            "bytes": len(body),
        }
        return post(url, content=body, headers=headers, timeout=target.timeout, request=request)

    def test(self, target: Target) -> TestResult:
        problem = url_problem(target.config.get("url"))
        if problem:
            return TestResult(ok=False, message=f"url: {problem}")
        return super().test(target)


register(Webhook())

"""Reading a collector request body: size caps, gzip by content, JSON."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from cdp.errors import BadRequest, PayloadTooLarge

GZIP_MAGIC = b"\x1f\x8b"


def decode_body(raw: bytes, *, content_encoding: str, max_bytes: int) -> bytes:
    """Gunzip when the header says gzip or the bytes start with the gzip magic, whatever
    Content-Type claims (rudder-node sends gzip labelled form-urlencoded). The decompressed
    size is capped while decompressing, so a small gzip bomb cannot exhaust memory."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"Request body is {len(raw)} bytes; the limit is {max_bytes} bytes.",
            code="request_too_large",
            detail={"limit_bytes": max_bytes},
        )
    encoding = content_encoding.strip().lower()
    if "gzip" in encoding or raw[:2] == GZIP_MAGIC:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = decompressor.decompress(raw, max_bytes + 1)
        except zlib.error as exc:
            raise BadRequest(
                f"Body is marked or looks gzip-compressed but cannot be decompressed: {exc}.",
                code="invalid_gzip",
            ) from None
        if len(data) > max_bytes or decompressor.unconsumed_tail:
            raise PayloadTooLarge(
                f"Decompressed request body exceeds the limit of {max_bytes} bytes.",
                code="request_too_large",
                detail={"limit_bytes": max_bytes},
            )
        return data
    if encoding not in ("", "identity"):
        raise BadRequest(
            f"Unsupported Content-Encoding {content_encoding!r}; send gzip or no encoding.",
            code="unsupported_encoding",
        )
    return raw


def parse_json(data: bytes) -> Any:
    if not data.strip():
        raise BadRequest("Request body is empty; expected a JSON object.", code="empty_body")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Body is not valid JSON: {exc}.", code="invalid_json") from None

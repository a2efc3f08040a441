"""Identifier types and their normalisation (shared by the collector's suppression check and,
later, identity resolution)."""

from __future__ import annotations

from typing import Any

import phonenumbers

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
EMAIL = "email"
PHONE = "phone"
DEVICE_ID = "device_id"
GROUP_ID = "group_id"
BUILTIN_TYPES = (USER_ID, ANONYMOUS_ID, EMAIL, PHONE, DEVICE_ID, GROUP_ID)


def normalize_email(value: str) -> str | None:
    text = value.strip().lower()
    return text if "@" in text else None


def normalize_phone(value: str, default_region: str | None = None) -> str | None:
    """E.164, or None when it is not a plausible phone number."""
    try:
        parsed = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize(identifier_type: str, value: Any, phone_region: str | None = None) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    if not text:
        return None
    if identifier_type == EMAIL:
        return normalize_email(text)
    if identifier_type == PHONE:
        return normalize_phone(text, phone_region or None)
    return text


def parse_identifier(spec: str) -> tuple[str, str]:
    """ "email:a@b.com" -> ("email", "a@b.com"); raises ValueError with a clear message."""
    identifier_type, sep, value = spec.partition(":")
    if not sep or not identifier_type or not value:
        raise ValueError(f"identifier {spec!r}: expected '<type>:<value>', e.g. 'email:a@b.com'")
    normalized = normalize(identifier_type, value)
    if normalized is None:
        raise ValueError(f"identifier {spec!r}: {value!r} is not a valid {identifier_type}")
    return identifier_type, normalized


def event_identifiers(
    *,
    user_id: str | None,
    anonymous_id: str | None,
    previous_id: str | None,
    traits: dict[str, Any],
    context: dict[str, Any],
) -> list[tuple[str, str]]:
    """The identifiers one event carries, normalised."""
    found: list[tuple[str, str]] = []
    if user_id:
        found.append((USER_ID, user_id))
    if anonymous_id:
        found.append((ANONYMOUS_ID, anonymous_id))
    if previous_id:
        # alias previousId is usually an anonymousId, sometimes an earlier userId
        found.append((ANONYMOUS_ID, previous_id))
        found.append((USER_ID, previous_id))
    for key, identifier_type in (("email", EMAIL), ("phone", PHONE)):
        normalized = normalize(identifier_type, traits.get(key))
        if normalized:
            found.append((identifier_type, normalized))
    device = context.get("device")
    if isinstance(device, dict):
        normalized = normalize(DEVICE_ID, device.get("id"))
        if normalized:
            found.append((DEVICE_ID, normalized))
    return found

"""The API router every app's `api_urls.py` uses: routes answer with and without the
trailing slash (SDK-style clients differ), never with a redirect, and an object's id in the
path is digits (`events/abc/` is a 404, not a database error)."""

from __future__ import annotations

from typing import Any

from rest_framework.routers import SimpleRouter

from cdp.params import ID_REGEX


class OptionalSlashRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"

    def get_lookup_regex(self, viewset: Any, lookup_prefix: str = "") -> str:
        field = getattr(viewset, "lookup_field", "pk")
        kwarg = getattr(viewset, "lookup_url_kwarg", None) or field
        value = getattr(viewset, "lookup_value_regex", ID_REGEX)
        return f"(?P<{lookup_prefix}{kwarg}>{value})"

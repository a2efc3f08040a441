"""The API router every app's `api_urls.py` uses: routes answer with and without the
trailing slash (SDK-style clients differ), never with a redirect."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"

"""The collector's endpoints without Django's full request handling (registered with
`cdp.fastpaths`): the same view, behind the middleware that shapes its answers (security and
CSP headers, request id, JSON errors and 503 while the database is down, the host check, NUL
parameters), without the ones it has no use for (static files, sessions, CSRF — the views are
exempt —, users, messages, login lockout) and without URL resolution. A single event costs
about 0.3 ms of Python in the view and 0.2 ms more through Django's whole stack."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils.module_loading import import_string

from profiles.collector import urls, views

# what the collector's answers do not depend on (every other middleware of settings.MIDDLEWARE
# runs, in its order, so one added later applies here too unless it is named here)
SKIPPED_MIDDLEWARE = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "axes.middleware.AxesMiddleware",
    }
)

# the ingest endpoints (the SDK settings routes, fetched once per page load, stay with Django)
INGEST_VIEWS = (
    views.batch,
    views.identify,
    views.track,
    views.page,
    views.screen,
    views.group,
    views.alias,
    views.beacon_batch,
)
# their patterns as profiles/collector/urls.py declares them (included at the site's root)
ROUTES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    entry.pattern.regex.pattern: entry.callback
    for entry in urls.urlpatterns
    if isinstance(entry, URLPattern) and entry.callback in INGEST_VIEWS
}


def middleware_paths() -> list[str]:
    return [path for path in settings.MIDDLEWARE if path not in SKIPPED_MIDDLEWARE]


class CollectorHandler(WSGIHandler):
    """Django's WSGI handler (request and response objects, signals, logging of 4xx/5xx)
    with a shorter middleware chain ending in one view."""

    def __init__(self, view: Callable[[HttpRequest], HttpResponse]) -> None:
        self.view = view
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(middleware_paths()):
            middleware = import_string(path)(handler)
            if hasattr(middleware, "process_exception"):
                self._exception_middleware.append(middleware.process_exception)
            handler = convert_exception_to_response(middleware)
        self._middleware_chain = handler

    def _get_response(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.view(request)
        except Exception as exc:
            response = self.process_exception_by_middleware(exc, request)
            if response is None:
                raise
            return response


def register() -> None:
    from cdp import fastpaths

    for pattern, view in ROUTES.items():
        fastpaths.register(pattern, functools.partial(CollectorHandler, view))

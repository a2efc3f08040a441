"""Routes the WSGI entry point (`cdp.wsgi`) hands to their own handler instead of Django's
full one: hot paths whose requests need neither sessions, users, CSRF nor URL resolution (the
collector's endpoints, ~0.2 ms of Python saved per request). An app registers them in its
`AppConfig.ready()`; the handler it gives must answer as Django's would, headers included.
Django's test client does not go through here: the owners test both ways give one answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_routes: list[tuple[re.Pattern[str], Callable[[], WSGIApp]]] = []


def register(pattern: str, handler: Callable[[], WSGIApp]) -> None:
    """`pattern` is a URL pattern as in a urls.py included at the site's root, matched in full
    against PATH_INFO without its leading "/"; `handler` makes the WSGI application, once,
    when the entry point is built (after every app is ready)."""
    _routes.append((re.compile(pattern), handler))


def application(django_app: WSGIApp) -> WSGIApp:
    """Django's application with the registered routes in front of it."""
    routes = [(pattern, make()) for pattern, make in _routes]
    if not routes:
        return django_app

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")[1:]
        for pattern, app in routes:
            if pattern.fullmatch(path):
                return app(environ, start_response)
        return django_app(environ, start_response)

    return dispatch

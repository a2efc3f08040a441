"""Structured logs: who a log record was written for, in text or as one JSON object a line.

A context (a contextvar, so each thread and each task has its own) holds what is known about
the work in hand: the request id and workspace of a web request (cdp/middleware.py,
cdp/auth.py), the id and name of a Celery task and its workspace (the Celery signals below).
`ContextFilter`, on every handler of settings.LOGGING, copies it onto each record; then
`TextFormatter` ends the line with "[request <id>] [workspace <id>]", and `JsonFormatter`
(LOG_FORMAT=json) writes the fields of the record as JSON, extras given with `extra=` too.

This module reads nothing from Django's settings at import: settings build LOGGING with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from cdp.env import ImproperlyConfiguredEnv

FORMATS = ("text", "json")
CONTEXT_FIELDS = ("request_id", "workspace_id", "task_id", "task")

_context: ContextVar[dict[str, Any]] = ContextVar("cdp_log_context", default={})  # noqa: B039 - never mutated
# attributes every LogRecord has: what is left on a record was given with `extra=`
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    *CONTEXT_FIELDS,
}


def bind(**fields: Any) -> Token[dict[str, Any]]:
    """Add `fields` to the context of the current thread or task; `reset` with the token
    puts back what was there before."""
    return _context.set({**_context.get(), **fields})


def reset(token: Token[dict[str, Any]]) -> None:
    _context.reset(token)


@contextlib.contextmanager
def bound(*, fresh: bool = False, **fields: Any) -> Iterator[None]:
    """`fields` in the context for the block; `fresh`: only them (a request starts from
    nothing, whatever code outside one left behind)."""
    token = _context.set(dict(fields)) if fresh else bind(**fields)
    try:
        yield
    finally:
        reset(token)


class ContextFilter(logging.Filter):
    """Puts the context's fields on each record (None when unknown); a field given with
    `extra=` wins. Django logs a 4xx answer (django.request) after the middleware is done:
    then the request the record names tells its id and workspace."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        request = getattr(record, "request", None)
        if request is not None and "request_id" not in context:
            workspace = getattr(request, "_cdp_workspace", None)
            context = {
                "request_id": getattr(request, "request_id", None),
                "workspace_id": getattr(workspace, "pk", None),
            }
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


class TextFormatter(logging.Formatter):
    """ "2026-01-05 12:00:00,123 ERROR name message [request 3f2a…] [workspace 7]" """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        tags = [
            f"[{label} {value}]"
            for label, value in (
                ("request", getattr(record, "request_id", None)),
                ("workspace", getattr(record, "workspace_id", None)),
                ("task", getattr(record, "task", None)),
                ("task_id", getattr(record, "task_id", None)),
            )
            if value is not None
        ]
        return " ".join([super().formatMessage(record), *tags])


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ms), level, logger, message, the context's fields
    that are known, process; exc_type, exc_message and traceback for an exception; and what
    was given with `extra=`."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        out["process"] = record.process
        if record.exc_info and record.exc_info[0] is not None:
            kind, error = record.exc_info[0], record.exc_info[1]
            module = kind.__module__
            out["exc_type"] = (
                kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
            )
            out["exc_message"] = str(error)
            out["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["traceback"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in out and not key.startswith("_"):
                out[key] = value
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def check_format(value: str) -> str:
    """LOG_FORMAT, checked: a typo must not silently keep the other format."""
    value = value.strip().lower() or "text"
    if value not in FORMATS:
        raise ImproperlyConfiguredEnv(f"LOG_FORMAT={value!r}: expected one of {', '.join(FORMATS)}")
    return value


def formatters() -> dict[str, Any]:
    """The `formatters` of settings.LOGGING: "text" and "json"."""
    return {"text": {"()": TextFormatter}, "json": {"()": JsonFormatter}}


def console_handler(log_format: str) -> dict[str, Any]:
    """The `console` handler of a logging configuration: stderr, in `log_format`, with the
    context's fields (settings.LOGGING; the web server's own loggers, cdp/web.py)."""
    return {
        "class": "logging.StreamHandler",
        "formatter": check_format(log_format),
        "filters": ["context"],
    }


def filters() -> dict[str, Any]:
    return {"context": {"()": ContextFilter}}


# ---- Celery ----------------------------------------------------------------------------------


def _task_workspace(args: Any, kwargs: Any) -> int | None:
    workspace = (kwargs or {}).get("workspace_id")
    if workspace is None and args:
        workspace = args[0]
    # bool is an int, and never a workspace id
    return workspace if isinstance(workspace, int) and not isinstance(workspace, bool) else None


_task_tokens: dict[str, Token[dict[str, Any]]] = {}


def on_task_prerun(task_id: str, task: Any, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    fields: dict[str, Any] = {"task_id": task_id, "task": getattr(task, "name", None)}
    workspace = _task_workspace(args, kwargs)
    if workspace is not None:
        fields["workspace_id"] = workspace
    _task_tokens[task_id] = bind(**fields)


def on_task_postrun(task_id: str, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        with contextlib.suppress(ValueError):  # set in another context: leave it
            reset(token)


def on_celery_logging_setup(logger: logging.Logger, **_: Any) -> None:
    """Celery replaces the root logger's handlers with its own (and gives celery.task its
    own): with LOG_FORMAT=json theirs write JSON too, and every format gets the context."""
    from django.conf import settings

    log_format = getattr(settings, "LOG_FORMAT", "text")
    for handler in logger.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if log_format == "json":
            handler.setFormatter(JsonFormatter())


def connect_celery_signals() -> None:
    from celery import signals

    signals.task_prerun.connect(on_task_prerun, dispatch_uid="cdp-logs-task-prerun", weak=False)
    signals.task_postrun.connect(on_task_postrun, dispatch_uid="cdp-logs-task-postrun", weak=False)
    for signal in (signals.after_setup_logger, signals.after_setup_task_logger):
        signal.connect(on_celery_logging_setup, dispatch_uid=f"cdp-logs-{signal.name}", weak=False)

"""Structured logs (cdp/logs.py): each record carries the request id, workspace and Celery task
it was written for; LOG_FORMAT=json writes one JSON object a line. Through the real test
client, a real Celery task run and real handlers on the root logger (a stream of our own)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import shared_task
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

from cdp import logs
from cdp.auth import current_workspace
from cdp.env import ImproperlyConfiguredEnv
from tests.fixtures import Tenant

ROOT = Path(__file__).resolve().parent.parent.parent
logger = logging.getLogger("cdp.tests.logs")


# ---- a test urlconf: a crash on an API path and on a page, a page that logs -------------------


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the operator must see this")


def hello(request: HttpRequest) -> HttpResponse:
    current_workspace(request)  # what every page and API view asks
    logger.info("hello from a page", extra={"answer": 42})
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/boom/", boom),
    path("boom/", boom),
    path("hello/", hello),
    path("", include("cdp.urls")),  # the real ones: the error pages name them
]


@shared_task(bind=True, name="cdp.tests.test_logs.logging_task")
def logging_task(self: Any, workspace_id: int, note: str = "") -> str:
    logger.info("working on %s", note)
    return str(self.request.id)


# ---- capturing what the real handlers write ---------------------------------------------------


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]  # every line is one JSON object


@pytest.fixture
def captured() -> Iterator[Captured]:
    """A JSON handler on the root logger, as settings.LOGGING makes it with LOG_FORMAT=json."""
    yield from _capture("json")


@pytest.fixture
def captured_text() -> Iterator[Captured]:
    yield from _capture("text")


def _capture(log_format: str) -> Iterator[Captured]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter_for(logs.check_format(log_format)))
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# ---- the formatter ------------------------------------------------------------------------------


def test_a_json_record_has_its_fields_extras_and_exception(captured: Captured) -> None:
    with logs.bound(request_id="r1", workspace_id=7):
        logger.warning("plain %s", "words", extra={"destination": 3, "when": object})
        empty: dict[str, int] = {}
        try:
            empty["missing"]
        except KeyError:
            logger.exception("it failed")
    logger.info("outside")
    first, failure, outside = captured.records()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert first["level"] == "WARNING"
    assert first["logger"] == "cdp.tests.logs"
    assert first["message"] == "plain words"
    assert first["request_id"] == "r1"
    assert first["workspace_id"] == 7
    assert first["process"] == os.getpid()
    assert first["destination"] == 3  # extra=
    assert first["when"] == str(object)  # not JSON: as text
    assert "exc_type" not in first and "task_id" not in first
    assert failure["exc_type"] == "KeyError"
    assert failure["exc_message"] == "'missing'"
    assert failure["traceback"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in failure["traceback"]
    assert "request_id" not in outside  # the context ended with the block


def test_the_text_format_shows_the_context(captured_text: Captured) -> None:
    with logs.bound(request_id="abc123", workspace_id=3):
        logger.error("something broke")
    logger.info("no context")
    with_context, without = captured_text.lines
    assert re.fullmatch(
        r"\S+ \S+ ERROR cdp\.tests\.logs something broke \[request abc123\] \[workspace 3\]",
        with_context,
    )
    assert without.endswith("INFO cdp.tests.logs no context")


def test_a_log_format_other_than_text_or_json_is_refused() -> None:
    assert logs.check_format("JSON") == "json"
    assert logs.check_format("") == "text"
    with pytest.raises(ImproperlyConfiguredEnv, match="LOG_FORMAT='xml'"):
        logs.check_format("xml")


# ---- requests ------------------------------------------------------------------------------------


@pytest.mark.urls("cdp.tests.test_logs")
def test_a_crash_on_an_api_path_is_one_error_record_with_the_answers_request_id(
    db: Any, captured: Captured
) -> None:
    answer = Client(raise_request_exception=False).get("/api/v1/boom/")
    assert answer.status_code == 500
    request_id = answer["X-Request-Id"]
    assert answer.json()["error"]["detail"]["request_id"] == request_id
    records = captured.records()
    errors = [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
    assert len(errors) == 1, errors  # not a second one from django.request
    (error,) = errors
    assert error["request_id"] == request_id
    assert error["message"] == "unhandled error on GET /api/v1/boom/"
    assert error["exc_type"] == "RuntimeError"
    assert error["exc_message"] == "the operator must see this"
    assert "raise RuntimeError" in error["traceback"]
    assert all(r.get("request_id") == request_id for r in records)


@pytest.mark.urls("cdp.tests.test_logs")
def test_a_crash_on_a_page_is_one_error_record_too(db: Any, captured: Captured) -> None:
    answer = Client(raise_request_exception=False).get("/boom/")
    assert answer.status_code == 500
    errors = [r for r in captured.records() if r["level"] == "ERROR"]
    assert len(errors) == 1, errors
    assert errors[0]["request_id"] == answer["X-Request-Id"]
    assert errors[0]["exc_type"] == "RuntimeError"
    assert "the operator must see this" in errors[0]["traceback"]


@pytest.mark.urls("cdp.tests.test_logs")
def test_a_signed_in_members_request_logs_its_workspace(
    tenant_a: Tenant, tenant_b: Tenant, captured: Captured
) -> None:
    # what code outside a request may have left in the context is not the request's
    with logs.bound(workspace_id=-1):
        answer = tenant_b.session().get("/hello/")
    assert answer.status_code == 200
    (record,) = [r for r in captured.records() if r["message"] == "hello from a page"]
    assert record["request_id"] == answer["X-Request-Id"]
    assert record["workspace_id"] == tenant_b.workspace.pk
    assert record["answer"] == 42
    Client().get("/hello/")  # nobody signed in: no workspace, and none left from before
    last = [r for r in captured.records() if r["message"] == "hello from a page"][-1]
    assert "workspace_id" not in last and last["request_id"] != record["request_id"]


@pytest.mark.urls("cdp.tests.test_logs")
def test_djangos_record_of_a_4xx_answer_carries_its_request_id(db: Any, captured: Captured) -> None:
    """django.request logs a 404 once the middleware is done: the request tells the id."""
    answer = Client().get("/api/v1/no-such-thing/")
    assert answer.status_code == 404
    (record,) = [r for r in captured.records() if r["logger"] == "django.request"]
    assert record["level"] == "WARNING" and record["status_code"] == 404
    assert record["request_id"] == answer["X-Request-Id"]


@pytest.mark.urls("cdp.tests.test_logs")
def test_a_request_id_from_a_proxy_is_kept_if_plain(db: Any) -> None:
    given = Client().get("/hello/", HTTP_X_REQUEST_ID="lb-0123456789abcdef")
    assert given["X-Request-Id"] == "lb-0123456789abcdef"
    odd = Client().get("/hello/", HTTP_X_REQUEST_ID="bad id\nwith a newline")
    assert re.fullmatch(r"[0-9a-f]{16}", odd["X-Request-Id"])


# ---- Celery tasks --------------------------------------------------------------------------------


def test_a_task_logs_with_its_id_name_and_workspace(db: Any, captured: Captured) -> None:
    result = logging_task.apply(args=[12], kwargs={"note": "the batch"})
    assert result.successful(), result.traceback
    working = [r for r in captured.records() if r["message"] == "working on the batch"]
    assert len(working) == 1
    assert working[0]["task_id"] == result.id
    assert working[0]["task"] == "cdp.tests.test_logs.logging_task"
    assert working[0]["workspace_id"] == 12
    logger.info("after the task")
    assert "task_id" not in captured.records()[-1]  # task_postrun ended its context
    logging_task.apply(kwargs={"workspace_id": 5})
    assert captured.records()[-1].get("workspace_id") == 5


# ---- the settings: LOG_FORMAT=json end to end, in a process of its own ------------------------

SCRIPT = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
django.setup()
import logging
from django.test import Client, override_settings
from django.urls import include, path

def boom(request):
    logging.getLogger("cdp.views").info("about to fail", extra={"step": 1})
    raise RuntimeError("the operator must see this")

urlpatterns = [path("api/v1/boom/", boom)]
with override_settings(ROOT_URLCONF=__name__, DEBUG=False):
    answer = Client(raise_request_exception=False).get("/api/v1/boom/")
print(answer.status_code, answer["X-Request-Id"])
"""


def test_log_format_json_makes_every_line_of_the_process_json(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    done = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**env, "LOG_FORMAT": "json", "CDP_LOG_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status, request_id = done.stdout.split()
    assert status == "500"
    records = [json.loads(line) for line in done.stderr.splitlines()]  # each line parses
    assert [r["message"] for r in records if r.get("request_id") == request_id] == [
        "about to fail",
        "unhandled error on GET /api/v1/boom/",
    ]
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == request_id
    assert "RuntimeError: the operator must see this" in errors[0]["traceback"]
    # (a warning, e.g. the static files' folder not collected yet, is a JSON line too)
    (first,) = [r for r in records if r["message"] == "about to fail"]
    assert first["step"] == 1
    (logged,) = [json.loads(line) for line in (tmp_path / "errors.log").read_text().splitlines()]
    assert logged["request_id"] == request_id and logged["exc_type"] == "RuntimeError"

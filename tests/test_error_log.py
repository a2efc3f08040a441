"""A 500 leaves its traceback where an operator finds it: errors.log in CDP_LOG_DIR, tagged
with the request id that the answer carries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
django.setup()
from django.test import Client, override_settings
from django.urls import path

def boom(request):
    raise RuntimeError("the operator must see this")

urlpatterns = [path("api/v1/boom/", boom)]
with override_settings(ROOT_URLCONF=__name__, DEBUG=False):
    answer = Client(raise_request_exception=False).get("/api/v1/boom/")
print(answer.status_code, answer.json()["error"]["detail"]["request_id"])
"""


def test_a_500_is_logged_to_the_error_file_with_its_request_id(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    done = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**env, "CDP_LOG_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status, request_id = done.stdout.split()
    assert status == "500"
    log = (tmp_path / "errors.log").read_text()
    assert f"[request {request_id}]" in log
    assert "RuntimeError: the operator must see this" in log  # the traceback itself

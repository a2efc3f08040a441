"""HTTPS mode (CDP_HTTPS=1): Django's deployment checklist finds nothing to warn about, and the
answers carry the headers it promises; without it, a plain-HTTP install keeps working."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        # as a deployment runs it (the browser tests allow async-unsafe ORM calls in this
        # process; a server never does)
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            "DEBUG": "0",
            "ALLOWED_HOSTS": "cdp.example.com",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_https_mode() -> None:
    done = check_deploy(CDP_HTTPS="1", SECRET_KEY=secrets.token_urlsafe(50))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_without_https_mode_the_checklist_names_what_is_missing() -> None:
    done = check_deploy(SECRET_KEY=secrets.token_urlsafe(50))
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stdout + done.stderr, warning

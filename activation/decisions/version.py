"""The workspace's decision-configuration version and this process's cache of it: every change
to placements, offers or experiments bumps the version, and every process reloads its copy at
its next decision (the decision reads the version in the same statement as the record)."""

from __future__ import annotations

import threading
from typing import Any

from django.db import connection

cache: dict[int, Any] = {}  # workspace id -> config.Config
lock = threading.Lock()


def forget(workspace_id: int | None = None) -> None:
    with lock:
        if workspace_id is None:
            cache.clear()
        else:
            cache.pop(workspace_id, None)


def bump(workspace_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activation_decisionstate (workspace_id, version) VALUES (%s, 1) "
            "ON CONFLICT (workspace_id) DO UPDATE SET "
            "version = activation_decisionstate.version + 1",
            [workspace_id],
        )
    forget(workspace_id)

"""Reads of activation, scoped by workspace."""

from __future__ import annotations

from django.db.models import QuerySet

from activation.models import ServerKey
from cdp.models import Workspace


def server_key_list(*, workspace: Workspace) -> QuerySet[ServerKey]:
    return ServerKey.objects.filter(workspace=workspace).order_by("id")

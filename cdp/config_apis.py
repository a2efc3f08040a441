"""Workspace configuration as code over HTTP (owners): `GET config/` exports the workspace's
definitions, `POST config/diff/` says what a document would change, `POST config/apply/`
applies it (all or nothing). Bodies and answers are JSON (`manage.py cdp_config` reads and
writes YAML too)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp import config_code
from cdp.views_support import CapabilityMixin


def _changes(changes: list[config_code.Change]) -> list[dict[str, Any]]:
    return [
        {"kind": c.kind, "name": c.name, "action": c.action, "fields": c.fields, "text": c.text()}
        for c in changes
    ]


class ConfigExportView(CapabilityMixin, APIView):
    """The workspace's definitions, a section per kind the apps register (sources, purposes,
    computed traits, segments, destinations, syncs, streams, metrics, experiments, placements,
    offers); secrets as references, never values."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        self.require("workspace.manage")
        return Response(config_code.export(self.workspace))


class ConfigDiffView(CapabilityMixin, APIView):
    """What applying the posted document would change (nothing is changed)."""

    @extend_schema(request=dict, responses=dict)
    def post(self, request: Request) -> Response:
        self.require("workspace.manage")
        return Response({"changes": _changes(config_code.diff(self.workspace, request.data))})


class ConfigApplyView(CapabilityMixin, APIView):
    """Apply the posted document: creates and updates, nothing deleted, all or nothing."""

    @extend_schema(request=dict, responses=dict)
    def post(self, request: Request) -> Response:
        self.require("workspace.manage")
        changes = config_code.apply(self.workspace, request.data, actor=request.user)
        return Response({"changes": _changes(changes)})

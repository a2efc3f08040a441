"""Management API of activation: decision-API server keys (destinations, syncs and the
decision API join them in the activation issues)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from activation import selectors, services
from activation.models import DeliveryKind, DeliveryStatus, ServerKey
from activation.serializers import (
    DeliveryDetailSerializer,
    DeliverySerializer,
    DestinationPatchSerializer,
    DestinationSerializer,
    DestinationWriteSerializer,
    HealthSerializer,
    KindSerializer,
    NewDestinationSerializer,
    QueuedSerializer,
    RetryAnswerSerializer,
    RetryDeadSerializer,
    StreamPatchSerializer,
    StreamSerializer,
    StreamWriteSerializer,
    SyncPatchSerializer,
    SyncPreviewRequestSerializer,
    SyncPreviewSerializer,
    SyncRunSerializer,
    SyncSerializer,
    SyncWriteSerializer,
    TestAnswerSerializer,
)
from activation.streams import services as stream_services
from activation.syncs import services as sync_services
from cdp import access
from cdp.apis import NameSerializer
from cdp.errors import Conflict, ErrorDoc, document_errors
from cdp.pagination import Pagination, paginated_response
from cdp.params import choice_param, int_param
from cdp.views_support import CapabilityMixin


class ServerKeySerializer(serializers.ModelSerializer):
    """A server key as listed: its display prefix, never the key (stored as a digest)."""

    class Meta:
        model = ServerKey
        fields = ["id", "name", "prefix", "created_at", "revoked_at"]
        read_only_fields = fields


class NewServerKeySerializer(ServerKeySerializer):
    """The answer that makes a server key: the only one carrying it."""

    key = serializers.CharField(source="secret", read_only=True)

    class Meta(ServerKeySerializer.Meta):
        fields = [*ServerKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ServerKeyListView(CapabilityMixin, APIView):
    """Decision-API server keys of this workspace."""

    pagination_class = Pagination

    @extend_schema(responses=ServerKeySerializer(many=True))
    def get(self, request: Request) -> Response:
        self.require("server_keys.manage")
        keys = selectors.server_key_list(workspace=self.workspace)
        return paginated_response(self, keys, ServerKeySerializer)

    @extend_schema(request=NameSerializer, responses={201: NewServerKeySerializer})
    def post(self, request: Request) -> Response:
        self.require("server_keys.manage")
        data = NameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = services.server_key_create(
            workspace=self.workspace, name=data.validated_data["name"], actor=request.user
        )
        return Response(NewServerKeySerializer(key).data, status=status.HTTP_201_CREATED)


class ServerKeyRevokeView(CapabilityMixin, APIView):
    @extend_schema(request=None, responses=ServerKeySerializer)
    def post(self, request: Request, pk: int) -> Response:
        self.require("server_keys.manage")
        key = services.server_key_revoke(workspace=self.workspace, key_id=pk, actor=request.user)
        return Response(ServerKeySerializer(key).data)


# ---- destinations ---------------------------------------------------------------------------

document_errors(
    ErrorDoc(
        "destination_in_use",
        409,
        "a sync or stream still sends to the destination",
        '{"used_by": [names]}',
    ),
    ErrorDoc("sync_disabled", 409, "run or resync asked of a paused sync"),
    ErrorDoc("not_dead", 409, "retry asked of a delivery that is not a dead letter"),
)


def _body(request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """Type-check the body with the serializer, then hand the services the body as sent
    (they validate the meaning and name each bad path)."""
    checked = serializer_class(data=request.data)
    checked.is_valid(raise_exception=True)
    data = request.data if isinstance(request.data, dict) else {}
    return {k: v for k, v in data.items() if k in checked.fields}


class DestinationKindsView(CapabilityMixin, APIView):
    """The catalogue of destination kinds and the settings each takes (the forms)."""

    @extend_schema(responses=KindSerializer(many=True))
    def get(self, request: Request) -> Response:
        self.require("destinations.view")
        from activation import connectors

        return Response(
            [
                {
                    "kind": c.kind,
                    "label": c.label,
                    "description": c.description,
                    "hashed_only": c.hashed_only,
                    "identifier_types": list(c.identifier_types),
                    "fields": [
                        {
                            "name": f.name,
                            "label": f.label,
                            "kind": f.kind,
                            "required": f.required,
                            "default": f.default,
                            "help": f.help,
                            "choices": list(f.choices),
                        }
                        for f in c.fields
                    ],
                }
                for c in connectors.kinds()
            ]
        )


class DestinationListView(CapabilityMixin, APIView):
    pagination_class = Pagination

    @extend_schema(responses=DestinationSerializer(many=True))
    def get(self, request: Request) -> Response:
        self.require("destinations.view")
        rows = selectors.destination_list(workspace=self.workspace)
        can_manage = access.can(request.user, self.workspace, "destinations.manage")
        return paginated_response(
            self, rows, DestinationSerializer, context={"can_manage": can_manage}
        )

    @extend_schema(request=DestinationWriteSerializer, responses={201: NewDestinationSerializer})
    def post(self, request: Request) -> Response:
        self.require("destinations.manage")
        data = _body(request, DestinationWriteSerializer)
        destination, generated = services.destination_create(
            workspace=self.workspace, data=data, actor=request.user
        )
        destination.generated_secrets = generated  # type: ignore[attr-defined]
        return Response(
            NewDestinationSerializer(destination, context={"can_manage": True}).data,
            status=status.HTTP_201_CREATED,
        )


class DestinationDetailView(CapabilityMixin, APIView):
    @extend_schema(responses=DestinationSerializer)
    def get(self, request: Request, pk: int) -> Response:
        self.require("destinations.view")
        destination = selectors.destination_get(workspace=self.workspace, destination_id=pk)
        can_manage = access.can(request.user, self.workspace, "destinations.manage")
        return Response(DestinationSerializer(destination, context={"can_manage": can_manage}).data)

    @extend_schema(request=DestinationPatchSerializer, responses=DestinationSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        self.require("destinations.manage")
        destination = selectors.destination_get(workspace=self.workspace, destination_id=pk)
        data = _body(request, DestinationPatchSerializer)
        destination = services.destination_update(
            destination=destination, data=data, actor=request.user
        )
        return Response(DestinationSerializer(destination, context={"can_manage": True}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        self.require("destinations.manage")
        destination = selectors.destination_get(workspace=self.workspace, destination_id=pk)
        services.destination_delete(destination=destination, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DestinationTestView(CapabilityMixin, APIView):
    """Send one harmless test message: the request made and the answer."""

    @extend_schema(request=None, responses=TestAnswerSerializer)
    def post(self, request: Request, pk: int) -> Response:
        self.require("destinations.manage")
        destination = selectors.destination_get(workspace=self.workspace, destination_id=pk)
        return Response(services.destination_test(destination=destination))


class DestinationHealthView(CapabilityMixin, APIView):
    @extend_schema(responses=HealthSerializer)
    def get(self, request: Request, pk: int) -> Response:
        self.require("destinations.view")
        destination = selectors.destination_get(workspace=self.workspace, destination_id=pk)
        return Response(
            HealthSerializer(selectors.destination_health(destination=destination)).data
        )


# ---- syncs ----------------------------------------------------------------------------------


class SyncListView(CapabilityMixin, APIView):
    pagination_class = Pagination

    @extend_schema(
        parameters=[OpenApiParameter("segment", int, description="only this segment's syncs")],
        responses=SyncSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        self.require("destinations.view")
        segment = request.query_params.get("segment")
        rows = selectors.sync_list(
            workspace=self.workspace,
            segment_id=int_param(segment, "segment", minimum=1) if segment else None,
        )
        return paginated_response(self, rows, SyncSerializer)

    @extend_schema(request=SyncWriteSerializer, responses={201: SyncSerializer})
    def post(self, request: Request) -> Response:
        self.require("syncs.manage")
        self.require("segments.view")
        sync = sync_services.sync_create(
            workspace=self.workspace, data=_body(request, SyncWriteSerializer), actor=request.user
        )
        return Response(SyncSerializer(sync).data, status=status.HTTP_201_CREATED)


class SyncDetailView(CapabilityMixin, APIView):
    @extend_schema(responses=SyncSerializer)
    def get(self, request: Request, pk: int) -> Response:
        self.require("destinations.view")
        sync = sync_services.sync_get(workspace=self.workspace, sync_id=pk)
        return Response(SyncSerializer(sync).data)

    @extend_schema(request=SyncPatchSerializer, responses=SyncSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        self.require("syncs.manage")
        sync = sync_services.sync_get(workspace=self.workspace, sync_id=pk)
        sync = sync_services.sync_update(
            sync=sync, data=_body(request, SyncPatchSerializer), actor=request.user
        )
        return Response(SyncSerializer(sync).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        self.require("syncs.manage")
        sync = sync_services.sync_get(workspace=self.workspace, sync_id=pk)
        sync_services.sync_delete(sync=sync, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SyncRunView(CapabilityMixin, APIView):
    """Plan a delta now (`run/`) or a full resync (`resync/`); runs are listed in `runs/`."""

    full = False

    @extend_schema(request=None, responses={202: QueuedSerializer})
    def post(self, request: Request, pk: int) -> Response:
        self.require("syncs.manage")
        sync = sync_services.sync_get(workspace=self.workspace, sync_id=pk)
        sync_services.sync_run_now(sync=sync, full=self.full, actor=request.user)
        return Response(
            {"queued": True, "kind": "full" if self.full else "delta"},
            status=status.HTTP_202_ACCEPTED,
        )


class SyncResyncView(SyncRunView):
    full = True


class SyncRunsView(CapabilityMixin, APIView):
    pagination_class = Pagination

    @extend_schema(responses=SyncRunSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        self.require("destinations.view")
        sync = sync_services.sync_get(workspace=self.workspace, sync_id=pk)
        return paginated_response(self, selectors.sync_runs(sync=sync), SyncRunSerializer)


class SyncPreviewView(CapabilityMixin, APIView):
    """The first members' payloads and the expected match rate, before a sync is made."""

    @extend_schema(request=SyncPreviewRequestSerializer, responses=SyncPreviewSerializer)
    def post(self, request: Request) -> Response:
        self.require("syncs.manage")
        data = _body(request, SyncPreviewRequestSerializer)
        return Response(
            sync_services.sync_preview(
                workspace=self.workspace,
                segment_id=data.get("segment"),
                destination_id=data.get("destination"),
                mapping=data.get("mapping"),
            )
        )


# ---- streams --------------------------------------------------------------------------------


class StreamListView(CapabilityMixin, APIView):
    pagination_class = Pagination

    @extend_schema(responses=StreamSerializer(many=True))
    def get(self, request: Request) -> Response:
        self.require("destinations.view")
        return paginated_response(
            self, selectors.stream_list(workspace=self.workspace), StreamSerializer
        )

    @extend_schema(request=StreamWriteSerializer, responses={201: StreamSerializer})
    def post(self, request: Request) -> Response:
        self.require("streams.manage")
        stream = stream_services.stream_create(
            workspace=self.workspace,
            data=_body(request, StreamWriteSerializer),
            actor=request.user,
        )
        return Response(StreamSerializer(stream).data, status=status.HTTP_201_CREATED)


class StreamDetailView(CapabilityMixin, APIView):
    @extend_schema(responses=StreamSerializer)
    def get(self, request: Request, pk: int) -> Response:
        self.require("destinations.view")
        stream = stream_services.stream_get(workspace=self.workspace, stream_id=pk)
        return Response(StreamSerializer(stream).data)

    @extend_schema(request=StreamPatchSerializer, responses=StreamSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        self.require("streams.manage")
        stream = stream_services.stream_get(workspace=self.workspace, stream_id=pk)
        stream = stream_services.stream_update(
            stream=stream, data=_body(request, StreamPatchSerializer), actor=request.user
        )
        return Response(StreamSerializer(stream).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        self.require("streams.manage")
        stream = stream_services.stream_get(workspace=self.workspace, stream_id=pk)
        stream_services.stream_delete(stream=stream, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---- deliveries -----------------------------------------------------------------------------


class DeliveryListView(CapabilityMixin, APIView):
    pagination_class = Pagination

    @extend_schema(
        parameters=[
            OpenApiParameter("destination", int),
            OpenApiParameter("status", str, enum=DeliveryStatus.values),
            OpenApiParameter("kind", str, enum=DeliveryKind.values),
        ],
        responses=DeliverySerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        self.require("deliveries.view")
        params = request.query_params
        destination = params.get("destination")
        rows = selectors.delivery_list(
            workspace=self.workspace,
            destination_id=int_param(destination, "destination", minimum=1)
            if destination
            else None,
            status=choice_param(params.get("status"), "status", DeliveryStatus.values),
            kind=choice_param(params.get("kind"), "kind", DeliveryKind.values),
        )
        return paginated_response(self, rows, DeliverySerializer)


class DeliveryDetailView(CapabilityMixin, APIView):
    @extend_schema(responses=DeliveryDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        self.require("deliveries.view")
        delivery = selectors.delivery_get(workspace=self.workspace, delivery_id=pk)
        return Response(DeliveryDetailSerializer(delivery).data)


class DeliveryRetryView(CapabilityMixin, APIView):
    """Replay one dead letter (same idempotency key, a fresh attempt budget)."""

    @extend_schema(request=None, responses=RetryAnswerSerializer)
    def post(self, request: Request, pk: int) -> Response:
        self.require("deliveries.retry")
        delivery = selectors.delivery_get(workspace=self.workspace, delivery_id=pk)
        if delivery.status != DeliveryStatus.DEAD:
            raise Conflict(
                f"Delivery #{delivery.pk} is {delivery.get_status_display().lower()}: only a "
                "dead letter can be retried.",
                code="not_dead",
            )
        return Response(
            services.deliveries_retry(
                workspace=self.workspace, ids=[delivery.pk], actor=request.user
            )
        )


class DeliveryRetryDeadView(CapabilityMixin, APIView):
    """Replay every dead letter (of one destination, or the given ids)."""

    @extend_schema(request=RetryDeadSerializer, responses=RetryAnswerSerializer)
    def post(self, request: Request) -> Response:
        self.require("deliveries.retry")
        checked = RetryDeadSerializer(data=request.data)
        checked.is_valid(raise_exception=True)
        data = checked.validated_data
        if data.get("destination"):
            selectors.destination_get(workspace=self.workspace, destination_id=data["destination"])
        return Response(
            services.deliveries_retry(
                workspace=self.workspace,
                ids=data.get("ids"),
                destination_id=data.get("destination"),
                actor=request.user,
            )
        )

"""Management API of activation: decision-API server keys (destinations, syncs and the
decision API join them in the activation issues)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from activation import selectors, services
from activation.models import ServerKey
from cdp.apis import NameSerializer
from cdp.pagination import Pagination, paginated_response
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

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp import access, selectors, services
from cdp.errors import NotFound
from cdp.inputs import JSONInput
from cdp.models import ApiToken, Role
from cdp.pagination import Pagination, paginated_response
from cdp.views_support import CapabilityMixin

User = get_user_model()


class ApiTokenSerializer(serializers.ModelSerializer):
    """A token as listed: its display prefix, never the key (stored as a digest only)."""

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class NewApiTokenSerializer(ApiTokenSerializer):
    """The answer that makes a token: the only one carrying its key."""

    key = serializers.CharField(source="secret", read_only=True)

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


class MemberSerializer(JSONInput):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class NameSerializer(JSONInput):
    name = serializers.CharField(max_length=100)


class MeView(CapabilityMixin, APIView):
    """Who you are: your username, the workspace this call acts in, your role there and every
    workspace you belong to."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        workspace = self.workspace
        return Response(
            {
                "username": request.user.get_username(),
                "workspace": {"id": workspace.pk, "name": workspace.name},
                "role": access.role_of(request.user, workspace),
                "workspaces": [
                    {"id": w.pk, "name": w.name} for w in access.workspaces_of(request.user)
                ],
            }
        )


class TokenListView(CapabilityMixin, APIView):
    """Your personal API tokens in this workspace."""

    pagination_class = Pagination

    @extend_schema(responses=ApiTokenSerializer(many=True))
    def get(self, request: Request) -> Response:
        tokens = selectors.api_tokens_of(workspace=self.workspace, user=request.user).order_by("id")
        return paginated_response(self, tokens, ApiTokenSerializer)

    @extend_schema(request=NameSerializer, responses={201: NewApiTokenSerializer})
    def post(self, request: Request) -> Response:
        self.require("tokens.own")
        data = NameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token = services.api_token_create(
            workspace=self.workspace, user=request.user, name=data.validated_data["name"]
        )
        return Response(NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenRevokeView(CapabilityMixin, APIView):
    @extend_schema(request=None, responses=ApiTokenSerializer)
    def post(self, request: Request, pk: int) -> Response:
        token = services.api_token_revoke(workspace=self.workspace, user=request.user, token_id=pk)
        return Response(ApiTokenSerializer(token).data)


class MemberListView(CapabilityMixin, APIView):
    """The workspace's members and their roles."""

    pagination_class = Pagination

    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = selectors.memberships_of(workspace=self.workspace)
        results = [{"username": m.user.get_username(), "role": m.role} for m in rows]
        return paginated_response(self, results, MemberSerializer)

    @extend_schema(request=MemberSerializer, responses=MemberSerializer)
    def post(self, request: Request) -> Response:
        self.require("members.manage")
        data = MemberSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_named(data.validated_data["username"])
        if user is None:
            raise NotFound(f"No user named {data.validated_data['username']!r}.")
        role = data.validated_data["role"]
        if role == Role.OWNER:
            self.require("workspace.manage")
        services.membership_set(workspace=self.workspace, user=user, role=role, actor=request.user)
        return Response({"username": user.get_username(), "role": role}, status=status.HTTP_200_OK)

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp import access, selectors, services
from cdp.errors import NON_FIELD, NotFound, ValidationFailed
from cdp.inputs import JSONInput
from cdp.models import ApiToken, Membership, MemberStatus, Role
from cdp.pagination import Pagination, paginated_response
from cdp.params import choice_param
from cdp.views_support import CapabilityMixin, settings_body

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


class MemberInputSerializer(JSONInput):
    username = serializers.CharField(
        help_text="A new username makes a user (email required); an existing account is "
        "added as it is; a member's username changes their role (as PATCH does)."
    )
    role = serializers.ChoiceField(choices=Role.choices)
    email = serializers.CharField(required=False, allow_blank=True, default="")
    name = serializers.CharField(required=False, allow_blank=True, default="")


class MemberPatchSerializer(JSONInput):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    active = serializers.BooleanField(required=False)


class MemberSerializer(serializers.Serializer):
    """A member. Email, status and sign-in times are for those who manage members (owners,
    admins): null for the other members, who see who is in the workspace and their roles."""

    id = serializers.IntegerField(read_only=True, help_text="the membership's id")
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(source="user.get_full_name", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    email = serializers.CharField(source="user.email", read_only=True, allow_null=True)
    status = serializers.ChoiceField(
        choices=MemberStatus.choices,
        read_only=True,
        allow_null=True,
        help_text="active, invited (never signed in) or deactivated (no access here)",
    )
    active = serializers.BooleanField(source="is_active", read_only=True, allow_null=True)
    last_login = serializers.DateTimeField(
        source="user.last_login", read_only=True, allow_null=True
    )
    joined_at = serializers.DateTimeField(source="created_at", read_only=True, allow_null=True)
    deactivated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    MANAGER_ONLY = ("email", "status", "active", "last_login", "joined_at", "deactivated_at")

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)
        if not self.context.get("manager"):
            data.update(dict.fromkeys(self.MANAGER_ONLY))
        return data


class NewMemberSerializer(MemberSerializer):
    set_password_url = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="for a user made by this call: their one-time set-password link (null for "
        "an existing account)",
    )


class MemberLinkSerializer(serializers.Serializer):
    set_password_url = serializers.CharField(read_only=True)


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
    """The workspace's members and their roles (`?q=` username, email or name; `?role=`;
    `?status=active|invited|deactivated`). POST adds a member (owners and admins; only an owner
    makes an owner)."""

    pagination_class = Pagination

    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request: Request) -> Response:
        params = request.query_params
        rows = selectors.members_of(
            workspace=self.workspace,
            q=params.get("q", ""),
            role=choice_param(params.get("role"), "role", Role.values),
            status=choice_param(params.get("status"), "status", MemberStatus.values),
        )
        context = {"manager": access.can(request.user, self.workspace, "members.manage")}
        return paginated_response(self, rows, MemberSerializer, context)

    @extend_schema(
        request=MemberInputSerializer,
        responses={201: NewMemberSerializer, 200: MemberSerializer},
    )
    def post(self, request: Request) -> Response:
        self.require("members.manage")
        data = MemberInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        workspace = self.workspace
        user = selectors.user_named(values["username"])
        member = Membership.objects.filter(workspace=workspace, user=user).first() if user else None
        if member is not None:  # a member already: their role changes
            member = services.member_role_set(
                workspace=workspace,
                actor=request.user,
                membership_id=member.pk,
                role=values["role"],
            )
            return Response(MemberSerializer(member, context={"manager": True}).data)
        added = services.member_add(
            workspace=workspace,
            actor=request.user,
            username=values["username"],
            role=values["role"],
            email=values["email"],
            name=values["name"],
        )
        body = MemberSerializer(added.membership, context={"manager": True}).data
        body["set_password_url"] = (
            request.build_absolute_uri(added.link) if added.link is not None else None
        )
        return Response(body, status=status.HTTP_201_CREATED)


class MemberDetailView(CapabilityMixin, APIView):
    """One member; PATCH `{"role": ..., "active": true|false}` changes their role and
    deactivates or reactivates them (owners and admins, with the rules of the Members page:
    not yourself, not the last owner, owners only by an owner)."""

    def _member(self, pk: int) -> Membership:
        member = selectors.member_of(workspace=self.workspace, membership_id=pk)
        if member is None:
            raise NotFound("No such member in this workspace.")
        return member

    @extend_schema(responses=MemberSerializer)
    def get(self, request: Request, pk: int) -> Response:
        context = {"manager": access.can(request.user, self.workspace, "members.manage")}
        return Response(MemberSerializer(self._member(pk), context=context).data)

    @extend_schema(request=MemberPatchSerializer, responses=MemberSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        self.require("members.manage")
        body = settings_body(request, ["role", "active"], what="member field")
        data = MemberPatchSerializer(data=body)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if not values:
            raise ValidationFailed.at(NON_FIELD, "expected role and/or active")
        member = self._member(pk)
        with transaction.atomic():
            if "role" in values:
                member = services.member_role_set(
                    workspace=self.workspace,
                    actor=request.user,
                    membership_id=member.pk,
                    role=values["role"],
                )
            if "active" in values:
                member = services.member_active_set(
                    workspace=self.workspace,
                    actor=request.user,
                    membership_id=member.pk,
                    active=values["active"],
                )
        return Response(MemberSerializer(member, context={"manager": True}).data)


class MemberLinkView(CapabilityMixin, APIView):
    """A new one-time set-password link for a member who never signed in (earlier links stop
    working); refused (409 `link_not_allowed`) for anyone who has a password or belongs to
    another workspace too."""

    @extend_schema(request=None, responses=MemberLinkSerializer)
    def post(self, request: Request, pk: int) -> Response:
        self.require("members.manage")
        path = services.member_link_issue(
            workspace=self.workspace, actor=request.user, membership_id=pk
        )
        return Response({"set_password_url": request.build_absolute_uri(path)})

from django.urls import path

from cdp import apis

urlpatterns = [
    path("me/", apis.MeView.as_view(), name="api-me"),
    path("tokens/", apis.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/revoke/", apis.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("members/", apis.MemberListView.as_view(), name="api-members"),
    path("members/<int:pk>/", apis.MemberDetailView.as_view(), name="api-member"),
    path("members/<int:pk>/link/", apis.MemberLinkView.as_view(), name="api-member-link"),
]

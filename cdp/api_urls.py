from django.urls import path

from cdp import apis, config_apis

urlpatterns = [
    path("me/", apis.MeView.as_view(), name="api-me"),
    path("tokens/", apis.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/revoke/", apis.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("members/", apis.MemberListView.as_view(), name="api-members"),
    path("config/", config_apis.ConfigExportView.as_view(), name="api-config"),
    path("config/diff/", config_apis.ConfigDiffView.as_view(), name="api-config-diff"),
    path("config/apply/", config_apis.ConfigApplyView.as_view(), name="api-config-apply"),
    path("members/<int:pk>/", apis.MemberDetailView.as_view(), name="api-member"),
    path("members/<int:pk>/link/", apis.MemberLinkView.as_view(), name="api-member-link"),
]

from django.urls import path

from activation import apis

urlpatterns = [
    path("server-keys/", apis.ServerKeyListView.as_view(), name="api-server-keys"),
    path(
        "server-keys/<int:pk>/revoke/",
        apis.ServerKeyRevokeView.as_view(),
        name="api-server-key-revoke",
    ),
]

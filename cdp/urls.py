"""The URL map: each app's pages (`<app>/urls.py`) and API routes (`<app>/api_urls.py`) are
included by module path, so the core imports none of the apps."""

from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularSwaggerSplitView,
)

from cdp import health, member_views, metrics, views

APPS = ["profiles", "consent", "segments", "activation"]

api_v1 = [
    path("", include("cdp.api_urls")),
    *(path("", include(f"{app}.api_urls")) for app in APPS),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("profiles.collector.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    # Swagger UI (its script served as a file, not inline) styles itself inline: that page
    # alone allows inline styles
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="openapi-schema")
        ),
        name="api-docs",
    ),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("favicon.ico", RedirectView.as_view(url=static("cdp/favicon.svg")), name="favicon"),
    path("admin/", admin.site.urls),
    path("", views.home, name="ui-home"),
    path("overview/pending/", views.overview_pending, name="ui-overview-pending"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workspace/switch/", views.switch_workspace, name="ui-switch-workspace"),
    path("settings/", views.settings_page, name="ui-settings"),
    path("system/", views.system_page, name="ui-system"),
    path("settings/members/", member_views.members_page, name="ui-members"),
    path("welcome/<str:uidb64>/<str:token>/", member_views.welcome, name="ui-welcome"),
    *(path("", include(f"{app}.urls")) for app in APPS),
]

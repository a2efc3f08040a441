from django.urls import re_path

from profiles.collector import views

# With and without a trailing slash, never a redirect (an SDK would not follow it for a POST).
# analytics.js 2.0 names each call by the first letter of its type (/v1/t, /v1/i, ...).
urlpatterns = [
    re_path(r"^v1/(?:batch|import|b)/?$", views.batch),
    re_path(r"^v1/(?:identify|i)/?$", views.identify),
    re_path(r"^v1/(?:track|t)/?$", views.track),
    re_path(r"^v1/(?:page|p)/?$", views.page),
    re_path(r"^v1/(?:screen|s)/?$", views.screen),
    re_path(r"^v1/(?:group|g)/?$", views.group),
    re_path(r"^v1/(?:alias|a)/?$", views.alias),
    # RudderStack's beacon queue: the write key in the query string (accepted there only)
    re_path(r"^beacon/v1/batch/?$", views.beacon_batch),
    # what the browser SDKs fetch before they start (analytics.js `cdnURL`, RudderStack
    # `configUrl`): pointing that one URL here is the whole set-up
    re_path(r"^v1/projects/(?P<write_key>[^/]{1,128})/settings/?$", views.segment_settings),
    re_path(r"^sourceConfig/?$", views.rudder_source_config),
]

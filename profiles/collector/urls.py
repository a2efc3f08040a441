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
]

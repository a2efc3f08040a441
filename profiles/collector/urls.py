from django.urls import re_path

from profiles.collector import views

# With and without a trailing slash, never a redirect (an SDK would not follow it for a POST).
urlpatterns = [
    re_path(r"^v1/batch/?$", views.batch),
    re_path(r"^v1/import/?$", views.batch),
    re_path(r"^v1/identify/?$", views.identify),
    re_path(r"^v1/track/?$", views.track),
    re_path(r"^v1/page/?$", views.page),
    re_path(r"^v1/screen/?$", views.screen),
    re_path(r"^v1/group/?$", views.group),
    re_path(r"^v1/alias/?$", views.alias),
]

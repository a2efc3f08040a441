from django.urls import path

from segments import views

urlpatterns = [
    path("segments/", views.segment_list, name="ui-segments"),
    path("segments/new/", views.segment_new, name="ui-segment-new"),
    path("segments/<int:segment_id>/", views.segment_detail, name="ui-segment"),
]

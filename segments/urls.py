from django.urls import path

from segments import views
from segments.ml import views as ml_views

urlpatterns = [
    path("segments/", views.segment_list, name="ui-segments"),
    path("segments/new/", views.segment_new, name="ui-segment-new"),
    path("segments/<int:segment_id>/", views.segment_detail, name="ui-segment"),
    path("segments/<int:segment_id>/members/", views.segment_members, name="ui-segment-members"),
    path("models/", ml_views.model_list, name="ui-models"),
    path("models/<int:model_id>/", ml_views.model_detail, name="ui-model"),
]

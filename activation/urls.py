from django.urls import path, re_path

from activation import views
from activation.decisions import serve
from activation.decisions import views as decision_views
from activation.experiments import views as experiment_views

urlpatterns = [
    # the decision API, for sites and servers (with and without a trailing slash, no redirect)
    re_path(r"^v1/decide/?$", serve.decide_view, name="decide"),
    path("decisions/", decision_views.decisions_page, name="ui-decisions"),
    path("destinations/", views.destination_list, name="ui-destinations"),
    path("destinations/new/<slug:kind>/", views.destination_new, name="ui-destination-new"),
    path("destinations/<int:destination_id>/", views.destination_detail, name="ui-destination"),
    path(
        "destinations/<int:destination_id>/edit/",
        views.destination_edit,
        name="ui-destination-edit",
    ),
    path(
        "destinations/<int:destination_id>/delete/",
        views.destination_delete,
        name="ui-destination-delete",
    ),
    path("syncs/", views.sync_list, name="ui-syncs"),
    path("syncs/new/", views.sync_new, name="ui-sync-new"),
    path("syncs/<int:sync_id>/", views.sync_detail, name="ui-sync"),
    path("syncs/<int:sync_id>/toggle/", views.sync_toggle, name="ui-sync-toggle"),
    path("syncs/<int:sync_id>/delete/", views.sync_delete, name="ui-sync-delete"),
    path("deliveries/", views.delivery_list, name="ui-deliveries"),
    path("deliveries/retry/", views.deliveries_retry, name="ui-deliveries-retry"),
    path("experiments/", experiment_views.experiment_list, name="ui-experiments"),
    path(
        "experiments/<int:experiment_id>/",
        experiment_views.experiment_detail,
        name="ui-experiment",
    ),
]

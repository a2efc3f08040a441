from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"

    def ready(self) -> None:
        from cdp import metrics, navigation
        from cdp.services import on_workspace_created
        from consent import config_kinds, overview, privacy, services, suppression, views
        from consent import metrics as consent_metrics
        from consent.enforcement import consent_state
        from profiles import panels
        from profiles.collector import door
        from profiles.identity import hooks
        from profiles.pipeline import stages

        # before the segments app's hooks (INSTALLED_APPS order): memberships re-evaluated
        # after a merge or split must see the moved decisions
        hooks.on_merge(services.move_consents_on_merge)
        hooks.on_split(services.move_consents_on_split)
        # suppressed people: dropped at the collector's door, and in the pipeline for events
        # queued before the suppression (before identity resolution)
        door.register("suppression", suppression.SuppressionDoor())
        stages.register("suppression", suppression.suppression_stage, order=10)
        # after identity resolution, before the segments that read the consent state
        stages.register("consent", services.consent_stage, order=30)
        privacy.register_handler()
        metrics.register_scrape_collector("privacy_requests", consent_metrics.collect)
        overview.register()
        config_kinds.register()
        on_workspace_created(
            lambda workspace: services.purposes_install_defaults(workspace=workspace)
        )
        panels.register(
            panels.ProfilePanel(
                key="consents",
                order=20,
                api=lambda p: consent_state(workspace_id=p.workspace_id, profile_id=p.pk),
                capability="consent.view",
                templates={
                    "side": "consent/_profile_consent.html",
                    "main": "consent/_profile_consent_history.html",
                },
                context=views.profile_panel,
            )
        )
        navigation.register(
            label="Privacy", url_name="ui-privacy", capability="privacy.manage", order=60
        )

from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"

    def ready(self) -> None:
        from cdp import metrics, navigation
        from profiles import panels
        from profiles.computed import hooks as computed_hooks
        from profiles.identity import hooks
        from profiles.pipeline import stages
        from segments import (
            config_kinds,
            explorer_filters,
            overview,
            privacy,
            realtime,
            selectors,
            services,
            views,
        )
        from segments import system as system_page
        from segments.ml import metrics as ml_metrics
        from segments.ml import views as ml_views

        hooks.on_merge(realtime.exit_merged_profile)
        hooks.on_split(realtime.evaluate_split)
        computed_hooks.on_values_changed(realtime.reevaluate_for_traits)
        computed_hooks.on_delete(services.segments_guard_trait_delete)
        stages.register("segments", realtime.segments_stage, order=50)
        stages.register("segments-counts", realtime.segments_counts_stage, order=99)
        metrics.register_scrape_collector("ml_drift", ml_metrics.collect)
        privacy.register()
        explorer_filters.register()
        overview.register()
        config_kinds.register()
        system_page.register()
        panels.register(
            panels.ProfilePanel(
                key="segments",
                order=10,
                api=lambda p: selectors.profile_segments(profile_id=p.pk),
                capability="segments.view",
                templates={"side": "segments/_profile_panel.html"},
                context=views.profile_panel,
            )
        )
        panels.register(
            panels.ProfilePanel(
                key="model_scores",
                order=12,
                api=ml_views.profile_scores,
                capability="models.view",
                templates={"side": "segments/_scores_panel.html"},
                context=ml_views.profile_panel,
            )
        )
        navigation.register(
            label="Segments", url_name="ui-segments", capability="segments.view", order=30
        )
        navigation.register(
            label="Models", url_name="ui-models", capability="models.view", order=31
        )

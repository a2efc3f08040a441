from django.apps import AppConfig


class ActivationConfig(AppConfig):
    name = "activation"

    def ready(self) -> None:
        from activation import config_kinds, overview, privacy, services
        from activation import metrics as activation_metrics
        from activation import system as system_page
        from activation.decisions import records as decision_records
        from activation.experiments import services as experiment_services
        from activation.streams.stage import forward_stage
        from activation.syncs import hooks as sync_hooks
        from activation.syncs import services as sync_services
        from cdp import metrics, navigation
        from cdp.services import register_provisioner
        from profiles.computed import hooks as computed_hooks
        from profiles.identity import hooks
        from profiles.pipeline import stages
        from segments import services as segment_services

        register_provisioner("server_key", services.server_key_provision)
        metrics.register_scrape_collector("destinations", activation_metrics.collect_destinations)
        metrics.register_scrape_collector("experiments", activation_metrics.collect_experiments)
        # after identity (20), consent (30) and segments (50): forwarded events carry their
        # profile, consent is current, and membership changes are already in the outbox
        stages.register("activation", forward_stage, order=60)
        # after the counters (90): the records carry the batch's traits, columns, consents
        # and memberships
        stages.register("decisions", decision_records.decisions_stage, order=95)
        hooks.on_merge(decision_records.on_merge)
        hooks.on_split(decision_records.on_split)
        computed_hooks.on_values_changed(decision_records.on_values_changed)
        hooks.on_merge(sync_hooks.on_merge)
        hooks.on_merge(experiment_services.move_exposures_on_merge)
        hooks.on_split(sync_hooks.on_split)
        computed_hooks.on_values_changed(sync_hooks.on_values_changed)
        privacy.register()
        config_kinds.register()
        overview.register()
        system_page.register()
        segment_services.register_delete_guard(sync_services.syncs_of_segment)
        navigation.register(
            label="Destinations",
            url_name="ui-destinations",
            capability="destinations.view",
            order=32,
        )
        navigation.register(
            label="Syncs", url_name="ui-syncs", capability="destinations.view", order=34
        )
        navigation.register(
            label="Deliveries", url_name="ui-deliveries", capability="deliveries.view", order=36
        )
        navigation.register(
            label="Experiments", url_name="ui-experiments", capability="experiments.view",
            order=38,
        )  # fmt: skip
        navigation.register(
            label="Decisions", url_name="ui-decisions", capability="decisions.view", order=39
        )
        from activation import views
        from segments import sections

        sections.register(
            key="synced_to",
            order=10,
            template="activation/_segment_syncs.html",
            context_fn=views.segment_section,
            capability="destinations.view",
        )

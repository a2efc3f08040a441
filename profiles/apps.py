from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"
    verbose_name = "Collection, events and profiles"

    def ready(self) -> None:
        from cdp import metrics, navigation
        from cdp.services import register_provisioner
        from profiles import config_kinds, overview, privacy, services
        from profiles import system as system_page
        from profiles.collector import wsgi as collector_wsgi
        from profiles.computed import stage as computed_stage
        from profiles.pipeline import metrics as pipeline_metrics
        from profiles.pipeline import queue, stages, stats

        stages.register("identity", queue.identity_stage, order=20)
        stages.register("computed_traits", computed_stage.update, order=40)
        # last: the counters upsert a few hot rows that every batch of the workspace shares,
        # and a row lock taken early would serialise the workers for the whole batch
        stages.register("counters", lambda batch: stats.record(batch.events), order=90)
        metrics.register_scrape_collector("pipeline_backlog", pipeline_metrics.collect)
        privacy.register()
        collector_wsgi.register()
        overview.register()
        system_page.register()
        config_kinds.register()
        register_provisioner("source", services.source_provision)
        navigation.register(
            label="Sources", url_name="ui-sources", capability="sources.view", order=10
        )
        navigation.register(
            label="Profiles", url_name="ui-profiles", capability="profiles.view", order=20
        )
        navigation.register(
            label="Event debugger", url_name="ui-debugger", capability="events.view", order=40
        )
        navigation.register(
            label="Schema", url_name="ui-schema", capability="schema.view", order=50
        )
        navigation.register_settings(
            key="identity",
            title="Identity resolution",
            description="Which identifiers merge profiles, limits per profile (e.g. one user id), "
            "junk values to ignore, and how traits combine.",
            url_name="ui-identity-rules",
            link_label="Identity rules",
            capability="identity_rules.view",
            order=10,
        )

import logging

from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Workspaces and access"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.db.backends.signals import connection_created

        from cdp import db, logs, navigation, schema, security  # noqa: F401  (schema: OpenAPI auth)

        # a backend whose client died ends its query and drops its locks (cdp/db.py)
        connection_created.connect(db.check_dead_clients, dispatch_uid="cdp-dead-clients")
        connection_created.connect(db.lower_session_priority, dispatch_uid="cdp-session-nice")

        user_locked_out.connect(security.on_user_locked_out, dispatch_uid="cdp-lockout-audit")
        # a task's id, name and workspace on its log records; JSON from Celery's own handlers
        # (a worker and beat set Django up before their logging)
        logs.connect_celery_signals()
        # Python warnings go through logging (the py.warnings logger): in the same format as
        # every other line, one JSON object with LOG_FORMAT=json
        logging.captureWarnings(True)

        navigation.register(label="Overview", url_name="ui-home", capability=None, order=0)
        navigation.register(label="Settings", url_name="ui-settings", capability=None, order=100)
        navigation.register_settings(
            key="members",
            title="Members",
            description="Who may sign in to this workspace and with which role: add people, "
            "change roles, deactivate those who left.",
            url_name="ui-members",
            link_label="Manage members",
            capability="members.manage",
            order=0,
        )
        navigation.register_settings(
            key="system",
            title="System",
            description="Whether the platform is healthy and keeping up: components, the "
            "pipeline's backlog, throughput, dead letters, database size, failing destinations.",
            url_name="ui-system",
            link_label="Open the System page",
            capability="system.view",
            order=90,
        )

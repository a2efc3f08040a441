from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Workspaces and access"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from cdp import navigation, schema, security  # noqa: F401  (schema: OpenAPI auth)

        user_locked_out.connect(security.on_user_locked_out, dispatch_uid="cdp-lockout-audit")

        navigation.register(label="Settings", url_name="ui-settings", capability=None, order=100)

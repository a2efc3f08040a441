from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Workspaces and access"

    def ready(self) -> None:
        from cdp import navigation, schema  # noqa: F401  (schema: the OpenAPI auth extension)

        navigation.register(label="Settings", url_name="ui-settings", capability=None, order=100)

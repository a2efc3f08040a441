from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Workspaces and access"

    def ready(self) -> None:
        from cdp import schema  # noqa: F401  (registers the OpenAPI auth extension)

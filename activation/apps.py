from django.apps import AppConfig


class ActivationConfig(AppConfig):
    name = "activation"

    def ready(self) -> None:
        from activation import services
        from cdp.services import register_provisioner

        register_provisioner("server_key", services.server_key_provision)

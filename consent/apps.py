from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"

    def ready(self) -> None:
        from consent import services
        from profiles.identity import hooks

        # before the segments app's hooks (INSTALLED_APPS order): memberships re-evaluated
        # after a merge or split must see the moved decisions
        hooks.on_merge(services.move_consents_on_merge)
        hooks.on_split(services.move_consents_on_split)

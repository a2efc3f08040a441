from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"

    def ready(self) -> None:
        from profiles.identity import hooks
        from segments import realtime

        hooks.on_merge(realtime.exit_merged_profile)
        hooks.on_split(realtime.evaluate_split)

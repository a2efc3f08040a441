"""Pipeline stage: user-defined computed traits of the profiles a batch touched."""

from __future__ import annotations

from profiles.computed import services
from profiles.pipeline.stages import Batch


def update(batch: Batch) -> None:
    services.computed_traits_update_for_batch(batch.resolution)

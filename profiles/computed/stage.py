"""Pipeline stage: user-defined computed traits of the profiles a batch touched."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profiles.pipeline.queue import Batch


def update(batch: Batch) -> None:
    from profiles.computed import services

    services.computed_traits_update_for_batch(batch.resolution)

"""Higher apps react to computed-trait changes through these registries (filled in their
AppConfig.ready()): segments re-evaluate the profiles whose values a refresh changed, and may
refuse the deletion of a trait their rules read.

A pipeline batch needs no hook: its segments stage runs after the computed stage on the same
profiles. The hooks serve the jobs outside the pipeline: a trait's backfill after it is
created or redefined, a window's expiry, the hourly built-ins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profiles.models import ComputedTrait

# (workspace_id, keys whose values may have changed, ids of the profiles whose values did)
ValuesHook = Callable[[int, frozenset[str], Sequence[int]], object]
# raises a cdp.errors.Conflict to refuse the deletion
DeleteGuard = Callable[["ComputedTrait"], None]

_values_hooks: list[ValuesHook] = []
_delete_guards: list[DeleteGuard] = []


def on_values_changed(hook: ValuesHook) -> ValuesHook:
    """Called inside the transaction that wrote the values, with the profiles still locked."""
    if hook not in _values_hooks:
        _values_hooks.append(hook)
    return hook


def on_delete(guard: DeleteGuard) -> DeleteGuard:
    if guard not in _delete_guards:
        _delete_guards.append(guard)
    return guard


def run_values_changed(workspace_id: int, keys: frozenset[str], profile_ids: Sequence[int]) -> None:
    if not profile_ids:
        return
    for hook in _values_hooks:
        hook(workspace_id, keys, profile_ids)


def check_delete(trait: ComputedTrait) -> None:
    for guard in _delete_guards:
        guard(trait)

"""Other apps keep rows per profile (consents, segment memberships); they register here to
move them on a merge and to put them back on a split, inside the same transaction."""

from __future__ import annotations

from collections.abc import Callable

# (workspace_id, winner_id, loser_id)
MergeHook = Callable[[int, int, int], None]
# (workspace_id, survivor_id, restored_id)
SplitHook = Callable[[int, int, int], None]

_merge_hooks: list[MergeHook] = []
_split_hooks: list[SplitHook] = []


def on_merge(hook: MergeHook) -> MergeHook:
    if hook not in _merge_hooks:
        _merge_hooks.append(hook)
    return hook


def on_split(hook: SplitHook) -> SplitHook:
    if hook not in _split_hooks:
        _split_hooks.append(hook)
    return hook


def run_merge_hooks(workspace_id: int, winner_id: int, loser_id: int) -> None:
    for hook in _merge_hooks:
        hook(workspace_id, winner_id, loser_id)


def run_split_hooks(workspace_id: int, survivor_id: int, restored_id: int) -> None:
    for hook in _split_hooks:
        hook(workspace_id, survivor_id, restored_id)

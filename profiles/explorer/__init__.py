"""The profile explorer (the Profiles page and the profiles list API): its query language and
registries (query.py), reads (selectors.py), saved views (services.py) and pages (views.py).
Higher apps register filters, actions and sort sources through the names below."""

from profiles.explorer.query import (
    ExplorerAction,
    ExplorerFilter,
    ExplorerQuery,
    parse_query,
    positional,
    register_action,
    register_filter,
    register_sort_source,
)

__all__ = [
    "ExplorerAction",
    "ExplorerFilter",
    "ExplorerQuery",
    "parse_query",
    "positional",
    "register_action",
    "register_filter",
    "register_sort_source",
]

"""The explorer's pages in the API: `count` is exact for the whole list (an index-only count)
and counted up to COUNT_CAP for a search or a filter (`count_capped` says when it stopped),
as on the page; a page is sorted by ids only, then its rows are loaded."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator

from cdp.pagination import CappedCountPagination
from profiles.explorer.selectors import count_capped


class CountedPaginator(Paginator):  # type: ignore[type-arg]
    """Pages of a list whose length was counted already (exactly, or up to a cap), each page
    asked for with LIMIT page size even when fewer rows are left: a search that matches one
    profile asked for with LIMIT 1 tempts Postgres to walk the primary key from the newest
    profile, expecting a match soon (its estimate for a rare word is a hundred rows), and read
    half a million rows; with LIMIT 25 it takes the trigram index."""

    def __init__(self, object_list: Any, per_page: int, total: int) -> None:
        super().__init__(object_list, per_page)
        self.count = total  # type: ignore[misc]  # counted already

    def page(self, number: Any) -> Any:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return Page(self.object_list[bottom : bottom + self.per_page], number, self)


class ExplorerPagination(CappedCountPagination):
    def __init__(self, *, narrowed: bool) -> None:
        self.narrowed = narrowed

    def paginate_queryset(self, queryset, request, view=None):  # type: ignore[no-untyped-def]
        if self.narrowed:
            self._capped_total = count_capped(queryset, self.COUNT_CAP)
        else:
            self._capped_total = queryset.order_by().count()
        total = self._capped_total
        if self.narrowed and total > self.COUNT_CAP:
            total = self.COUNT_CAP
        self.django_paginator_class = lambda rows, size: CountedPaginator(rows, size, total)  # type: ignore[assignment]
        return super(CappedCountPagination, self).paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):  # type: ignore[no-untyped-def]
        response = super().get_paginated_response(data)
        if not self.narrowed:  # exact, however many
            response.data["count"] = self._capped_total
            response.data["count_capped"] = False
        return response

from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """{"count": N, "next": url|null, "previous": url|null, "results": [...]}"""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class CappedCountPagination(PageNumberPagination):
    """For very large tables (events): the count stops at COUNT_CAP instead of scanning
    millions of rows; `count_capped` says so."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    COUNT_CAP = 10_000

    def paginate_queryset(self, queryset, request, view=None):  # type: ignore[no-untyped-def]
        self._capped_total = queryset[: self.COUNT_CAP + 1].count()
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):  # type: ignore[no-untyped-def]
        response = super().get_paginated_response(data)
        capped = self._capped_total > self.COUNT_CAP
        response.data["count"] = min(self._capped_total, self.COUNT_CAP)
        response.data["count_capped"] = capped
        return response

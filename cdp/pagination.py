"""Page-number pagination with strict parameters: a `page_size` or `page` that is not a whole
number in range is a 400 naming the parameter (DRF would silently use the default), a page
past the last one a 404."""

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from cdp.params import int_param


class _Strict(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return int(self.page_size)
        return int_param(value, self.page_size_query_param, minimum=1, maximum=self.max_page_size)

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        value = request.query_params.get(self.page_query_param)
        if value is None or value in self.last_page_strings:
            return super().get_page_number(request, paginator)
        return int_param(value, self.page_query_param, minimum=1)


class Pagination(_Strict):
    """{"count": N, "next": url|null, "previous": url|null, "results": [...]}"""


class CappedCountPagination(_Strict):
    """For very large tables (events): the count stops at COUNT_CAP instead of scanning
    millions of rows; `count_capped` says so."""

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

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count_capped"] = {
            "type": "boolean",
            "description": f"true when there are more than {self.COUNT_CAP:,} (the count stops)",
        }
        response["required"] = [*response.get("required", []), "count_capped"]
        return response


def paginated_response(
    view: Any, rows: Any, serializer_class: Any, context: dict[str, Any] | None = None
) -> Any:
    """A page of `rows` for an APIView that declares `pagination_class` (GenericViewSets use
    their own paginate_queryset): the same answer, parameters and errors as every list."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(rows, view.request, view=view)
    return paginator.get_paginated_response(
        serializer_class(page, many=True, context=context or {}).data
    )

"""The profile explorer's language: what its URL (and the profiles list API) may ask for —
search text, sort order, RFM segments, and filters that higher apps add — checked once here,
for the page, the API and saved views alike.

Higher apps take part through two registries filled in their `AppConfig.ready()`:
- `register_filter(ExplorerFilter(...))`: a query parameter that narrows the list (segments
  adds `segment=<key>`, membership, and `rule=<JSON>`, a rule of its rule language compiled to
  SQL), with how the page offers it (a pick list, or a client-side editor);
- `register_action(ExplorerAction(...))`: a button that does something with the current
  query (segments: "Create segment from this filter"), behind a capability;
- `register_sort_source(...)`: more computed values to sort by (segments: model scores).

A query is kept as its canonical query string (`ExplorerQuery.query_string()`), the same in
the page's links, its pager and the saved views."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from cdp.errors import ValidationFailed
from cdp.models import Workspace
from profiles import identifiers
from profiles.computed import builtin
from profiles.identity.rules import load_rules
from profiles.models import Aggregation, ComputedTrait

Q_MAX = 200  # characters of search text
PARAM_MAX = 20_000  # characters of one filter's parameter (a rule as JSON)
DEFAULT_ORDER = "-created"
COMPUTED = "computed:"  # order=-computed:<key> sorts by a value in Profile.computed
_COMPUTED_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


# ---- the registries --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExplorerFilter:
    """A query parameter that narrows the explorer's profiles.

    `parse(workspace, text)` checks the parameter's text and returns its value (or raises
    ValidationFailed with paths starting at `param`); `condition(workspace, value)` is a Q on
    live Profile rows; `describe(workspace, value)` the text of its chip. A page offers it as a
    pick list (`choices(workspace)`: [(value, label)]) or through a client-side editor
    (`editor(workspace)`: JSON-able config, `{"kind": ...}`, that the page's script reads)."""

    param: str
    label: str
    capability: str
    parse: Callable[[Workspace, str], Any]
    condition: Callable[[Workspace, Any], Any]
    describe: Callable[[Workspace, Any], str]
    choices: Callable[[Workspace], list[tuple[str, str]]] | None = None
    editor: Callable[[Workspace], dict[str, Any]] | None = None
    order: int = 50


@dataclass(frozen=True, slots=True)
class ExplorerAction:
    """A button of the explorer that acts on its query: `run(workspace, actor, query)` returns
    the URL to go to next (or raises an ApplicationError to show)."""

    key: str
    label: str
    capability: str
    run: Callable[[Workspace, Any, ExplorerQuery], str]
    title: str = ""
    # shown only when the query has a filter (rfm or a registered one), not for search alone
    needs_filter: bool = True


# (workspace) -> [(computed key, label, values: number | text | any)]: more values of
# Profile.computed to sort by
SortSource = Callable[[Workspace], list[tuple[str, str, str]]]

_FILTERS: dict[str, ExplorerFilter] = {}
_ACTIONS: dict[str, ExplorerAction] = {}
_SORT_SOURCES: dict[str, SortSource] = {}
RESERVED = frozenset({"q", "identifier", "order", "rfm", "page", "page_size"})


def register_filter(spec: ExplorerFilter) -> None:
    if spec.param in RESERVED:
        raise ValueError(f"{spec.param!r} is a parameter of the explorer itself")
    _FILTERS[spec.param] = spec


def register_action(action: ExplorerAction) -> None:
    _ACTIONS[action.key] = action


def register_sort_source(name: str, source: SortSource) -> None:
    _SORT_SOURCES[name] = source


def filters() -> list[ExplorerFilter]:
    return sorted(_FILTERS.values(), key=lambda f: (f.order, f.param))


def actions() -> list[ExplorerAction]:
    return list(_ACTIONS.values())


def action(key: str) -> ExplorerAction | None:
    return _ACTIONS.get(key)


# ---- sorting ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sort:
    """A sort key: a Profile column, or a value in Profile.computed (`computed_key`)."""

    key: str
    label: str
    column: str | None = None
    computed_key: str | None = None
    # what a computed value holds: "number" (always a JSON number), "text" (a string), or
    # "any" (numbers and numeric strings sort as numbers, then other text)
    values: str = "any"

    @property
    def kind(self) -> str:
        """number, date or text: how the pick list words the two directions."""
        if self.column in ("first_seen", "last_seen"):
            return "date"
        return "text" if self.values == "text" else "number"


COLUMN_SORTS: tuple[Sort, ...] = (
    Sort("created", "Created", column="id"),
    Sort("last_seen", "Last seen", column="last_seen"),
    Sort("first_seen", "First seen", column="first_seen"),
    Sort("revenue", "Revenue", column="revenue"),
    Sort("orders", "Orders", column="order_count"),
    Sort("events", "Events", column="event_count"),
    Sort("engagement", "Engagement", computed_key="engagement_score", values="number"),
)
_BY_KEY = {s.key: s for s in COLUMN_SORTS}
# built-ins kept in Profile.computed (engagement has its own column sort above)
_COMPUTED_BUILTINS = [
    t for t in builtin.BUILTIN_TRAITS if t.computed_key and t.key != "engagement_score"
]
# custom computed traits that always hold a number (first / last / most frequent: anything)
_NUMERIC = {
    Aggregation.COUNT,
    Aggregation.SUM,
    Aggregation.AVG,
    Aggregation.MIN,
    Aggregation.MAX,
    Aggregation.DISTINCT_COUNT,
}


def computed_sorts(workspace: Workspace) -> list[Sort]:
    """The workspace's computed values to sort by: scheduled built-ins (RFM, average order
    value…), its custom computed traits, and what registered sources add."""
    seen: set[str] = set()
    out: list[Sort] = []

    def add(key: str, label: str, values: str) -> None:
        if key in seen or not _COMPUTED_KEY.fullmatch(key):
            return
        seen.add(key)
        out.append(Sort(f"{COMPUTED}{key}", label, computed_key=key, values=values))

    for trait in _COMPUTED_BUILTINS:
        # "545" (RFM score) sorts as well as text: three digits each
        add(trait.key, trait.label, "number" if trait.type in ("integer", "number") else "text")
    for custom in ComputedTrait.objects.filter(workspace=workspace).order_by("name", "key"):
        add(custom.key, custom.name, "number" if custom.aggregation in _NUMERIC else "any")
    for source in _SORT_SOURCES.values():
        for key, label, values in source(workspace):
            add(key, label, values)
    return out


def sort_for(workspace: Workspace, key: str) -> Sort | None:
    if key in _BY_KEY:
        return _BY_KEY[key]
    if key.startswith(COMPUTED):
        return next((s for s in computed_sorts(workspace) if s.key == key), None)
    return None


def order_choices(workspace: Workspace) -> list[tuple[str, list[tuple[str, str]]]]:
    """The sort pick list: (group label, [(order value, label)]), both directions of each."""

    def both(sort: Sort) -> list[tuple[str, str]]:
        high, low = {
            "date": ("newest first", "oldest first"),
            "text": ("Z → A", "A → Z"),
            "number": ("high → low", "low → high"),
        }[sort.kind]
        if sort.key == "created":
            high, low = "newest first", "oldest first"
        return [(f"-{sort.key}", f"{sort.label}: {high}"), (sort.key, f"{sort.label}: {low}")]

    groups = [("Columns", [choice for s in COLUMN_SORTS for choice in both(s)])]
    computed = [choice for s in computed_sorts(workspace) for choice in both(s)]
    if computed:
        groups.append(("Computed traits", computed))
    return groups


# ---- the query -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppliedFilter:
    spec: ExplorerFilter
    text: str  # the parameter as given (kept in links and saved views)
    value: Any  # as spec.parse returned it


@dataclass(frozen=True, slots=True)
class ExplorerQuery:
    q: str = ""
    identifier: str = ""  # "<type>:<value>": one exact identifier
    order: str = DEFAULT_ORDER
    sort: Sort = COLUMN_SORTS[0]
    rfm: tuple[str, ...] = ()
    applied: tuple[AppliedFilter, ...] = field(default=())

    @property
    def descending(self) -> bool:
        return self.order.startswith("-")

    @property
    def has_filter(self) -> bool:
        """Narrowed by something a segment rule can say (RFM, registered filters)."""
        return bool(self.rfm or self.applied)

    @property
    def narrowed(self) -> bool:
        return bool(self.q or self.identifier or self.has_filter)

    def value(self, param: str) -> Any:
        """The parsed value of a registered filter in use (None when it is not)."""
        return next((a.value for a in self.applied if a.spec.param == param), None)

    def params(self) -> list[tuple[str, str]]:
        """The canonical parameters: an identifier typed into the search box as `type:value`
        is kept as `identifier=`, the default order is left out."""
        items: list[tuple[str, str]] = []
        if self.identifier:
            items.append(("identifier", self.identifier))
        if self.q:
            items.append(("q", self.q))
        items += [("rfm", label) for label in self.rfm]
        items += [(a.spec.param, a.text) for a in self.applied]
        if self.order != DEFAULT_ORDER:
            items.append(("order", self.order))
        return items

    def query_string(self, **changes: str) -> str:
        """The canonical query string, with `changes` applied ("" removes a parameter)."""
        items = [(k, v) for k, v in self.params() if k not in changes]
        items += [(k, v) for k, v in changes.items() if v]
        return urlencode(items)


def _identifier_types(workspace: Workspace) -> set[str]:
    rules = load_rules(workspace.pk)
    return set(identifiers.BUILTIN_TYPES) | set(rules.custom_traits) | set(rules.priority)


def _identifier(text: str, path: str) -> str:
    try:
        kind, value = identifiers.parse_identifier(text)
    except ValueError as exc:
        raise ValidationFailed({path: [str(exc)]}, message=str(exc)) from exc
    return f"{kind}:{value}"


def _rfm(values: Iterable[str]) -> tuple[str, ...]:
    by_lower = {label.lower(): label for label in builtin.RFM_SEGMENTS}
    out: list[str] = []
    for raw in values:
        for part in raw.split(","):
            text = part.strip()
            if not text:
                continue
            label = by_lower.get(text.lower())
            if label is None:
                raise ValidationFailed.at(
                    "rfm",
                    f"{text[:40]!r} is not an RFM segment "
                    f"(one of {', '.join(builtin.RFM_SEGMENTS)})",
                )
            if label not in out:
                out.append(label)
    return tuple(out)


def parse_query(
    *, workspace: Workspace, params: Mapping[str, Any], can: Callable[[str], bool]
) -> ExplorerQuery:
    """The checked query of a URL's (or a saved view's) parameters; every problem at once, as
    one ValidationFailed naming the parameters (`q`, `order`, `rfm`, `rule.all[0].op`…).
    `can(capability)` says whether the user may use a registered filter."""
    problems = _Problems()

    def get(name: str) -> str:
        value = params.get(name)
        return "" if value is None else str(value).strip()

    q = get("q")
    identifier = ""
    if len(q) > Q_MAX:
        problems.add(ValidationFailed.at("q", f"at most {Q_MAX} characters"))
        q = ""
    kind, sep, rest = q.partition(":")
    if sep and rest.strip() and kind.strip() in _identifier_types(workspace):
        # "email:ada@example.com": one exact identifier, not a text search
        try:
            identifier = _identifier(q, "q")
        except ValidationFailed as exc:
            problems.add(exc)
        q = ""
    if get("identifier"):
        try:
            identifier = _identifier(get("identifier"), "identifier")
        except ValidationFailed as exc:
            problems.add(exc)

    order = get("order") or DEFAULT_ORDER
    sort = sort_for(workspace, order.removeprefix("-"))
    if sort is None:
        known = ", ".join(s.key for s in COLUMN_SORTS)
        problems.add(
            ValidationFailed.at(
                "order",
                f"unknown sort {order[:60]!r}: one of {known} or {COMPUTED}<computed trait "
                "key>, with a leading - for descending",
            )
        )
        order, sort = DEFAULT_ORDER, COLUMN_SORTS[0]

    rfm: tuple[str, ...] = ()
    try:
        rfm = _rfm(_values(params, "rfm"))
    except ValidationFailed as exc:
        problems.add(exc)

    applied: list[AppliedFilter] = []
    for spec in filters():
        text = get(spec.param)
        if not text:
            continue
        try:
            if not can(spec.capability):
                raise ValidationFailed.at(
                    spec.param, f"your role cannot filter by {spec.label.lower()}"
                )
            if len(text) > PARAM_MAX:
                raise ValidationFailed.at(spec.param, f"at most {PARAM_MAX:,} characters")
            applied.append(AppliedFilter(spec, text, spec.parse(workspace, text)))
        except ValidationFailed as exc:
            problems.add(exc)

    problems.raise_any()
    return ExplorerQuery(
        q=q, identifier=identifier, order=order, sort=sort, rfm=rfm, applied=tuple(applied)
    )


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    """Every value of a repeated parameter (a QueryDict's list, or a list in a dict)."""
    getlist = getattr(params, "getlist", None)
    if getlist is not None:
        return [str(v) for v in getlist(name)]
    value = params.get(name)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


class _Problems:
    """The problems of several parameters, raised together (the first one's message)."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.message: str | None = None

    def add(self, exc: ValidationFailed) -> None:
        if self.message is None:
            self.message = exc.message
        for path, messages in exc.fields.items():
            self.fields.setdefault(path, []).extend(messages)

    def raise_any(self) -> None:
        if self.fields:
            raise ValidationFailed(self.fields, message=self.message)


# ---- SQL helpers shared with the filters of higher apps --------------------------------------

_NAMED = re.compile(r"%\((\w+)\)s")


def positional(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """SQL with %(name)s placeholders (a name may be used several times) as %s placeholders
    and their values in order, as Django's RawSQL takes them (`%%` stays as it is)."""
    values: list[Any] = []

    def one(match: re.Match[str]) -> str:
        values.append(params[match.group(1)])
        return "%s"

    return _NAMED.sub(one, sql), values

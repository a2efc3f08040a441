"""Parse and check a rule's JSON into the typed tree of nodes.py.

Every problem is reported with the path of the node it is in, e.g.
`rule.all[1].any[0].count.value: expected an integer ≥ 0`, and all of a rule's problems are
reported at once (ValidationFailed.detail["fields"]: path -> messages)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdp.errors import ValidationFailed
from cdp.paths import PathError, split_path
from segments.rules import nodes as n

MAX_DEPTH = 12
MAX_NODES = 200
MAX_LIST = 1000
MAX_STRING = 1000
MAX_WINDOW_DAYS = 3650
MAX_COUNT = 1_000_000_000
MAX_PATH_STEPS = 8
# numbers beyond this are not customer data; Postgres numeric would take them, JSON
# consumers of the rule (the builder, exports) would silently round them
MAX_MAGNITUDE = 10**30
GROUP_KEYS = ("all", "any", "not")
CONDITION_KEYS = ("trait", "event", "segment", "consent", "random_bucket", "model")
# conditions only rules evaluated at decision time (offers' eligibility) may use
DECISION_KEYS = ("context",)


@dataclass
class RuleContext:
    """What a rule may refer to in its workspace."""

    # built-in computed traits kept as Profile columns: key -> (column, kind)
    columns: dict[str, tuple[str, str]] = field(default_factory=dict)
    # keys of Profile.computed: scheduled built-ins and user-defined computed traits
    computed_keys: set[str] = field(default_factory=set)
    # segment reference (id or key as given) -> segment id, or None when unknown
    find_segment: Callable[[Any], int | None] = lambda _ref: None
    # consent purposes of the workspace; None while consent is not configured
    consent_purposes: set[str] | None = None
    # the database's verdict on a regular expression (None = valid, else its message); the
    # rules run as Postgres regexes (ARE), whose dialect differs from Python's `re`
    regex_error: Callable[[str], str | None] | None = None
    # clusters models: key -> {label: name} of every cluster any of its versions made (a
    # label a retrain dropped still parses; nobody is in it)
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)
    # a rule evaluated at decision time on one profile's record (offers' eligibility): it may
    # read the request's `context` but no events (the record holds none; a segment can)
    decision_time: bool = False


class _Checker:
    def __init__(self, context: RuleContext) -> None:
        self.context = context
        self.errors: list[dict[str, str]] = []
        self.count = 0

    def fail(self, path: str, message: str) -> None:
        self.errors.append({"path": path, "message": message})

    # ---- nodes --------------------------------------------------------------------------

    def node(self, data: Any, path: str, depth: int) -> n.Node | None:
        self.count += 1
        if self.count > MAX_NODES:
            if self.count == MAX_NODES + 1:
                self.fail(path, f"a rule may have at most {MAX_NODES} nodes")
            return None
        if depth > MAX_DEPTH:
            self.fail(path, f"groups may be nested at most {MAX_DEPTH} deep")
            return None
        if not isinstance(data, dict):
            self.fail(path, "expected an object (a group or a condition)")
            return None
        keys: tuple[str, ...] = (*GROUP_KEYS, *CONDITION_KEYS)
        if self.context.decision_time:
            keys = (*keys, *DECISION_KEYS)
        elif "context" in data:
            self.fail(f"{path}.context", "context conditions are for offers' eligibility only")
            return None
        kinds = [k for k in keys if k in data]
        if len(kinds) != 1:
            expected = ", ".join(keys)
            found = f"found {', '.join(kinds)}" if kinds else f"found keys {sorted(data)}"
            self.fail(path, f"expected exactly one of {expected}; {found}")
            return None
        kind = kinds[0]
        if kind in ("all", "any"):
            return self.group(kind, data, path, depth)
        if kind == "not":
            self.only(data, ("not",), path)
            child = self.node(data["not"], f"{path}.not", depth + 1)
            return n.Not(child) if child is not None else None
        return {
            "trait": self.trait,
            "event": self.event,
            "segment": self.segment,
            "consent": self.consent,
            "random_bucket": self.random_bucket,
            "model": self.cluster,
            "context": self.request_context,
        }[kind](data, path)

    def only(self, data: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in sorted(set(data) - set(allowed)):
            self.fail(f"{path}.{key}", f"unknown field (allowed: {', '.join(allowed)})")

    def group(self, kind: str, data: dict[str, Any], path: str, depth: int) -> n.Node | None:
        self.only(data, (kind,), path)
        items = data[kind]
        if not isinstance(items, list) or not items:
            self.fail(f"{path}.{kind}", "expected a non-empty list of conditions or groups")
            return None
        children = [self.node(c, f"{path}.{kind}[{i}]", depth + 1) for i, c in enumerate(items)]
        if any(c is None for c in children):
            return None
        kept = tuple(c for c in children if c is not None)
        return n.All(kept) if kind == "all" else n.AnyOf(kept)

    def trait(self, data: dict[str, Any], path: str) -> n.Node | None:
        self.only(data, ("trait", "op", "value"), path)
        name = data["trait"]
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            self.fail(f"{path}.trait", "expected a trait name")
            return None
        ref = self.trait_ref(name.strip(), f"{path}.trait")
        comparison = self.comparison(data, path, column_kind=ref.kind if ref else None)
        if ref is None or comparison is None:
            return None
        return n.TraitCondition(ref, comparison)

    def trait_ref(self, name: str, at: str) -> n.TraitRef | None:
        """A built-in kept as a column by its key; otherwise a dotted path whose first key
        names a computed trait or a trait (`address.city`, `favorite_product.name`)."""
        if name in self.context.columns:
            column, kind = self.context.columns[name]
            return n.TraitRef("column", column, kind)
        keys = self.path_keys(name, at)
        if keys is None:
            return None
        top, below = keys[0], keys[1:]
        if top in self.context.columns:
            self.fail(at, f"{top} is a {self.context.columns[top][1]}; it has no fields")
            return None
        store = "computed" if top in self.context.computed_keys else "traits"
        return n.TraitRef(store, top, None, below)

    def path_keys(self, text: str, at: str) -> tuple[str, ...] | None:
        try:
            keys = split_path(text)
        except PathError as exc:
            self.fail(at, str(exc))
            return None
        if len(keys) > MAX_PATH_STEPS:
            self.fail(at, f"a path may have at most {MAX_PATH_STEPS} steps")
            return None
        return keys

    def request_context(self, data: dict[str, Any], path: str) -> n.Node | None:
        """{"context": "page.url", "op": "contains", "value": "/sale"}: a value the caller
        of the decision API sent in `context`."""
        self.only(data, ("context", "op", "value"), path)
        name = data["context"]
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            self.fail(f"{path}.context", 'expected a context path, e.g. "page.url"')
            return None
        keys = self.path_keys(name.strip(), f"{path}.context")
        comparison = self.comparison(data, path, column_kind=None)
        if keys is None or comparison is None:
            return None
        return n.ContextCondition(keys, comparison)

    def event(self, data: dict[str, Any], path: str) -> n.Node | None:
        if self.context.decision_time:
            self.fail(
                path,
                "event conditions cannot be evaluated at decision time: build a segment with "
                'it and use {"segment": key}',
            )
            return None
        self.only(data, ("event", "where", "count", "within", "between", "never"), path)
        name = data["event"]
        ok = True
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            self.fail(f"{path}.event", "expected an event name")
            ok = False
        filters = []
        where = data.get("where", [])
        if not isinstance(where, list):
            self.fail(f"{path}.where", "expected a list of property filters")
            ok = False
            where = []
        for i, item in enumerate(where):
            at = f"{path}.where[{i}]"
            if not isinstance(item, dict) or "property" not in item:
                self.fail(at, 'expected {"property": ..., "op": ..., "value": ...}')
                ok = False
                continue
            self.only(item, ("property", "op", "value"), at)
            prop = item["property"]
            if not isinstance(prop, str) or not prop.strip() or len(prop) > 255:
                self.fail(f"{at}.property", "expected a property name (dotted for nesting)")
                ok = False
                continue
            comparison = self.comparison(item, at, column_kind=None)
            if comparison is None:
                ok = False
                continue
            keys = self.path_keys(prop.strip(), f"{at}.property")
            if keys is None:
                ok = False
                continue
            filters.append(n.PropertyFilter(keys, comparison))
        count_op, count = self.count_of(data, path)
        if count_op is None:
            ok = False
        within = between = None
        if "within" in data and "between" in data:
            self.fail(path, "use either within or between, not both")
            ok = False
        elif "within" in data:
            within = self.window(data["within"], f"{path}.within")
            ok = ok and within is not None
        elif "between" in data:
            between = self.between_dates(data["between"], f"{path}.between")
            ok = ok and between is not None
        if not ok or count_op is None:
            return None
        return n.EventCondition(name.strip(), tuple(filters), count_op, count, within, between)

    def count_of(self, data: dict[str, Any], path: str) -> tuple[str | None, int]:
        never = data.get("never", False)
        if not isinstance(never, bool):
            self.fail(f"{path}.never", "expected true or false")
            return None, 0
        if never:
            if "count" in data:
                self.fail(f"{path}.never", "never: true already means a count of 0; drop count")
                return None, 0
            return "eq", 0
        count = data.get("count", {"op": "gte", "value": 1})
        if not isinstance(count, dict):
            self.fail(f"{path}.count", 'expected {"op": "gte", "value": 3}')
            return None, 0
        self.only(count, ("op", "value"), f"{path}.count")
        op, value = count.get("op"), count.get("value")
        if op not in n.COUNT_OPS:
            self.fail(f"{path}.count.op", f"expected one of {', '.join(n.COUNT_OPS)}")
            return None, 0
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            self.fail(f"{path}.count.value", f"expected an integer from 0 to {MAX_COUNT:,}")
            return None, 0
        return op, value

    def window(self, data: Any, path: str) -> int | None:
        if not isinstance(data, dict) or len(data) != 1 or not set(data) <= {"days", "hours"}:
            self.fail(path, 'expected {"days": N} or {"hours": N}')
            return None
        unit, amount = next(iter(data.items()))
        limit = MAX_WINDOW_DAYS * (24 if unit == "hours" else 1)
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= limit:
            self.fail(f"{path}.{unit}", f"expected an integer from 1 to {limit}")
            return None
        return amount * (3600 if unit == "hours" else 86400)

    def between_dates(self, data: Any, path: str) -> tuple[datetime, datetime] | None:
        if not isinstance(data, list) or len(data) != 2:
            self.fail(path, 'expected ["<from date>", "<to date>"]')
            return None
        low = self.absolute_date(data[0], f"{path}[0]")
        high = self.absolute_date(data[1], f"{path}[1]")
        if low is None or high is None:
            return None
        if low > high:
            self.fail(path, "the first date must not be after the second")
            return None
        return low, high

    def absolute_date(self, value: Any, path: str) -> datetime | None:
        parsed = parse_date(value)
        if parsed is None:
            self.fail(path, "expected an ISO 8601 date or date-time, e.g. 2026-01-31")
        return parsed

    def segment(self, data: dict[str, Any], path: str) -> n.Node | None:
        self.only(data, ("segment",), path)
        ref = data["segment"]
        if isinstance(ref, bool) or not isinstance(ref, int | str) or ref == "":
            self.fail(f"{path}.segment", "expected a segment id or key")
            return None
        segment_id = self.context.find_segment(ref)
        if segment_id is None:
            self.fail(f"{path}.segment", f"no published segment {ref!r} in this workspace")
            return None
        return n.SegmentCondition(segment_id)

    def consent(self, data: dict[str, Any], path: str) -> n.Node | None:
        self.only(data, ("consent", "status"), path)
        purpose, status = data["consent"], data.get("status", "granted")
        purposes = self.context.consent_purposes
        if purposes is None:
            self.fail(f"{path}.consent", "consent purposes are not configured in this workspace")
            return None
        if purpose not in purposes:
            self.fail(f"{path}.consent", f"unknown purpose {purpose!r}")
            return None
        if status not in ("granted", "denied"):
            self.fail(f"{path}.status", "expected granted or denied")
            return None
        return n.ConsentCondition(purpose, status)

    def cluster(self, data: dict[str, Any], path: str) -> n.Node | None:
        """{"model": key, "cluster": label or [labels]}: the cluster the model's scoring
        wrote to the computed trait `key`."""
        self.only(data, ("model", "cluster"), path)
        key = data["model"]
        if not isinstance(key, str) or key not in self.context.clusters:
            known = ", ".join(sorted(self.context.clusters)) or "none in this workspace"
            self.fail(f"{path}.model", f"no clusters model {key!r} (clusters models: {known})")
            return None
        labels = self.context.clusters[key]
        wanted = data.get("cluster")
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or not all(isinstance(v, str) and v for v in values):
            self.fail(f"{path}.cluster", "a cluster label, or a non-empty list of them")
            return None
        unknown = [v for v in values if v not in labels]
        if unknown:
            listed = ", ".join(f"{label} ({name})" for label, name in labels.items())
            self.fail(
                f"{path}.cluster",
                f"{key} has no cluster {unknown[0]!r}; its clusters: {listed or 'none yet'}",
            )
            return None
        ref = n.TraitRef("computed", key)
        if len(values) == 1:
            return n.TraitCondition(ref, n.Comparison("eq", values[0]))
        return n.TraitCondition(ref, n.Comparison("in", tuple(dict.fromkeys(values))))

    def random_bucket(self, data: dict[str, Any], path: str) -> n.Node | None:
        self.only(data, ("random_bucket", "salt"), path)
        spec = data["random_bucket"]
        percent = spec.get("percent") if isinstance(spec, dict) else spec
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            self.fail(f"{path}.random_bucket", 'expected {"percent": 0–100}')
            return None
        if not 0 <= percent <= 100:
            self.fail(f"{path}.random_bucket.percent", "expected a number from 0 to 100")
            return None
        if isinstance(spec, dict):
            self.only(spec, ("percent", "salt"), f"{path}.random_bucket")
            if "salt" in spec and "salt" in data:
                self.fail(f"{path}.salt", "give the salt once, inside random_bucket or beside it")
                return None
        salt = (
            spec.get("salt", data.get("salt", ""))
            if isinstance(spec, dict)
            else data.get("salt", "")
        )
        if not isinstance(salt, str) or len(salt) > 100:
            self.fail(f"{path}.salt", "expected a short string")
            return None
        return n.RandomBucket(float(percent), salt)

    # ---- comparisons --------------------------------------------------------------------

    def comparison(
        self, data: dict[str, Any], path: str, *, column_kind: str | None
    ) -> n.Comparison | None:
        op = data.get("op")
        if op not in n.ALL_OPS:
            self.fail(f"{path}.op", f"unknown operator {op!r}; one of {', '.join(n.ALL_OPS)}")
            return None
        if op in n.PRESENCE_OPS:
            if "value" in data:
                self.fail(f"{path}.value", f"{op} takes no value")
                return None
            return n.Comparison(op, None)
        if "value" not in data:
            self.fail(f"{path}.value", f"{op} needs a value")
            return None
        value = data["value"]
        at = f"{path}.value"
        if column_kind == "datetime" and op not in (*n.DATE_OPS, *n.PRESENCE_OPS):
            self.fail(
                f"{path}.op", f"a date trait takes before, after, within_last or exists; not {op}"
            )
            return None
        if column_kind == "number" and op in (*n.STRING_OPS, *n.DATE_OPS):
            self.fail(f"{path}.op", f"a number trait does not take {op}")
            return None
        checked = self.value_for(op, value, at)
        return n.Comparison(op, checked) if checked is not _INVALID else None

    def value_for(self, op: str, value: Any, at: str) -> Any:
        if op in n.SCALAR_OPS:
            if not _scalar(value):
                return self.invalid(at, "expected a string, number or boolean")
            return value
        if op in n.NUMBER_OPS:
            if not _number(value):
                return self.invalid(at, "expected a number")
            return value
        if op in n.RANGE_OPS:
            if not (isinstance(value, list) and len(value) == 2 and all(map(_number, value))):
                return self.invalid(at, "expected [low, high] numbers")
            if value[0] > value[1]:
                return self.invalid(at, "low must not be greater than high")
            return (value[0], value[1])
        if op in n.SET_OPS:
            if not isinstance(value, list) or not value or len(value) > MAX_LIST:
                return self.invalid(at, f"expected a list of 1 to {MAX_LIST} values")
            if not all(map(_scalar, value)):
                return self.invalid(at, "expected strings, numbers or booleans in the list")
            return tuple(value)
        if op in n.STRING_OPS:
            if not isinstance(value, str) or not value or len(value) > MAX_STRING:
                return self.invalid(at, "expected a non-empty string")
            if op == "regex":
                problem = self.regex_error(value)
                if problem is not None:
                    return self.invalid(at, f"not a valid regular expression: {problem}")
            return value
        if op == "within_last":
            seconds = self.window(value, at)
            return seconds if seconds is not None else _INVALID
        # before / after: an absolute date or {"days_ago": N}
        if isinstance(value, dict):
            days = value.get("days_ago")
            if set(value) != {"days_ago"} or isinstance(days, bool) or not isinstance(days, int):
                return self.invalid(at, 'expected a date or {"days_ago": N}')
            if not 0 <= days <= MAX_WINDOW_DAYS:
                return self.invalid(f"{at}.days_ago", f"expected 0 to {MAX_WINDOW_DAYS}")
            return n.RelativeDate(days)
        parsed = parse_date(value)
        if parsed is None:
            return self.invalid(at, 'expected an ISO 8601 date or {"days_ago": N}')
        return parsed

    def regex_error(self, pattern: str) -> str | None:
        if self.context.regex_error is not None:
            return self.context.regex_error(pattern)
        try:
            re.compile(pattern)
        except re.error as exc:
            return str(exc)
        return None

    def invalid(self, at: str, message: str) -> Any:
        self.fail(at, message)
        return _INVALID


_INVALID = object()


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or _number(value)


def _number(value: Any) -> bool:
    """A finite JSON number of a sane magnitude (no NaN, no infinity, no 10**400)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return abs(value) <= MAX_MAGNITUDE


def _nul_paths(data: Any, path: str) -> list[str]:
    """Paths of strings (keys or values) holding a NUL character, which Postgres text and
    jsonb cannot store: such a rule could never match anything, so it is refused."""
    if isinstance(data, str):
        return [path] if "\x00" in data else []
    if isinstance(data, dict):
        found = [f"{path}.{key!r}" for key in data if isinstance(key, str) and "\x00" in key]
        for key, value in data.items():
            found += _nul_paths(value, f"{path}.{key}")
        return found
    if isinstance(data, list):
        return [p for i, item in enumerate(data) for p in _nul_paths(item, f"{path}[{i}]")]
    return []


def parse_date(value: Any) -> datetime | None:
    """ISO 8601 date or date-time; naive values are UTC."""
    if not isinstance(value, str) or not 8 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_rule(data: Any, context: RuleContext) -> n.Node:
    """The checked tree, or ValidationFailed naming every bad node's path."""
    checker = _Checker(context)
    nul = _nul_paths(data, "rule")
    for at in nul[:20]:
        checker.fail(at, "text may not contain the NUL character (\\u0000)")
    node = checker.node(data, "rule", 0) if not nul else None
    if checker.errors or node is None:
        errors = checker.errors or [{"path": "rule", "message": "invalid rule"}]
        fields: dict[str, list[str]] = {}
        for error in errors:
            fields.setdefault(error["path"], []).append(error["message"])
        raise ValidationFailed(fields)
    return node

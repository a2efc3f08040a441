"""The identity graph as a networkx graph: the whole workspace (for the rebuild job) and the
neighbourhood of one profile, laid out for drawing (for the profile page).

Nodes are Identity ids, edges are IdentityLink rows. Both are read with streaming
`values_list` queries so a large workspace never materialises one ORM object per row."""

from __future__ import annotations

from typing import Any

import networkx as nx
from django.db.models import Case, IntegerField, Q, Value, When

from cdp.errors import NotFound
from profiles.identity.rules import Rules, load_rules
from profiles.models import Identity, IdentityLink, Profile

STREAM_CHUNK = 10_000
LINKS_SCANNED_MAX = 5_000  # links read around one profile (a shared device can have thousands)
KAMADA_KAWAI_MAX = 60  # nodes; above this (or when disconnected) the spring layout is used
LAYOUT_SEED = 7
MAX_MERGE_CHAIN = 100


def workspace_graph(workspace_id: int) -> nx.Graph:
    """Every identifier of the workspace (attributes: type, value, profile_id) and every
    link between two of them."""
    graph = nx.Graph()
    identities = (
        Identity.objects.filter(workspace_id=workspace_id)
        .values_list("id", "type", "value", "profile_id")
        .iterator(chunk_size=STREAM_CHUNK)
    )
    graph.add_nodes_from(
        (iid, {"type": kind, "value": value, "profile_id": pid})
        for iid, kind, value, pid in identities
    )
    links = (
        IdentityLink.objects.filter(workspace_id=workspace_id)
        .values_list("a_id", "b_id")
        .iterator(chunk_size=STREAM_CHUNK)
    )
    graph.add_edges_from(links)
    return graph


def _rank_expression(rules: Rules) -> Case:
    return Case(
        *(When(type=kind, then=Value(rank)) for rank, kind in enumerate(rules.priority)),
        default=Value(len(rules.priority)),
        output_field=IntegerField(),
    )


def _live(workspace_id: int, profile_id: int) -> int:
    current = profile_id
    for _ in range(MAX_MERGE_CHAIN):
        forward = (
            Profile.objects.filter(workspace_id=workspace_id, pk=current)
            .values_list("merged_into_id", flat=True)
            .first()
        )
        if forward is None:
            return current
        current = forward
    return current


def _node(row: dict[str, Any], profile_id: int) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "value": row["value"],
        "profile_id": row["profile_id"],
        "foreign": row["profile_id"] != profile_id,
        "first_seen": row["first_seen"].isoformat() if row["first_seen"] else None,
    }


def _layout(graph: nx.Graph) -> dict[int, tuple[float, float]]:
    """Positions in the unit box, aspect ratio kept, centred; deterministic."""
    n = graph.number_of_nodes()
    if n == 0:
        return {}
    if n == 1:
        return {next(iter(graph.nodes)): (0.5, 0.5)}
    if n <= KAMADA_KAWAI_MAX and nx.is_connected(graph):
        raw = nx.kamada_kawai_layout(graph)
    else:
        raw = nx.spring_layout(graph, seed=LAYOUT_SEED)
    xs = [float(p[0]) for p in raw.values()]
    ys = [float(p[1]) for p in raw.values()]
    span = max(max(xs) - min(xs), max(ys) - min(ys))
    mid_x, mid_y = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    if span <= 0:
        return {node: (0.5, 0.5) for node in raw}
    return {
        node: (
            round(min(1.0, max(0.0, 0.5 + (float(p[0]) - mid_x) / span)), 4),
            round(min(1.0, max(0.0, 0.5 + (float(p[1]) - mid_y) / span)), 4),
        )
        for node, p in raw.items()
    }


def _select(
    own: list[dict[str, Any]],
    foreign: list[dict[str, Any]],
    pairs: list[tuple[int, int]],
    max_nodes: int,
) -> list[dict[str, Any]]:
    """Which nodes to draw when there are too many (both lists come sorted by priority)."""
    if len(own) + len(foreign) <= max_nodes:
        return own + foreign
    order = {row["id"]: index for index, row in enumerate(own)}
    neighbours: dict[int, set[int]] = {}
    for a, b in pairs:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    chosen: list[dict[str, Any]] = []
    anchors: set[int] = set()  # own identifiers that must stay so a foreign one is linked
    for row in foreign[: max(1, max_nodes // 4)]:
        anchor = min(neighbours[row["id"]] & order.keys(), key=order.__getitem__)
        needed = len(chosen) + len(anchors | {anchor}) + 1
        if needed > max_nodes:
            break
        chosen.append(row)
        anchors.add(anchor)
    room = max_nodes - len(chosen) - len(anchors)
    kept: list[dict[str, Any]] = []
    for row in own:
        if row["id"] in anchors:
            kept.append(row)
        elif room > 0:
            kept.append(row)
            room -= 1
    return kept + chosen


def profile_graph(
    *, profile_id: int, max_nodes: int = 200, workspace_id: int | None = None
) -> dict[str, Any]:
    """The identity graph around one profile, for the profile page: its identifiers, the
    identifiers of other profiles linked to them directly (`foreign`, e.g. a shared device
    whose merge a limit refused), the links among them (`cross` when they join two
    profiles), and positions in a 0..1 box to draw it without a JS graph library.

    Beyond max_nodes the profile's highest-priority identifiers are kept, plus up to a quarter
    of the places for the highest-priority foreign ones (each with the own identifier it is
    linked to), and `truncated` is set. A merged-away profile shows its survivor."""
    scope = Profile.objects.filter(pk=profile_id)
    if workspace_id is not None:
        scope = scope.filter(workspace_id=workspace_id)
    ws = scope.values_list("workspace_id", flat=True).first()
    if ws is None:
        raise NotFound(f"profile {profile_id} does not exist in this workspace")
    live_id = _live(ws, profile_id)
    rules = load_rules(ws)
    fields = ("id", "type", "value", "profile_id", "first_seen")
    own_qs = Identity.objects.filter(workspace_id=ws, profile_id=live_id)
    own_total = own_qs.count()
    own = list(
        own_qs.annotate(rank=_rank_expression(rules))
        .order_by("rank", "id")
        .values(*fields, "rank")[:max_nodes]
    )
    own_ids = {row["id"] for row in own}
    pairs = list(
        IdentityLink.objects.filter(workspace_id=ws)
        .filter(Q(a_id__in=own_ids) | Q(b_id__in=own_ids))
        .order_by("id")
        .values_list("a_id", "b_id")[:LINKS_SCANNED_MAX]
    )
    other_ids = {x for pair in pairs for x in pair} - own_ids
    # own identifiers beyond the cut are not foreign: leave them out
    foreign_qs = Identity.objects.filter(workspace_id=ws, id__in=other_ids).exclude(
        profile_id=live_id
    )
    foreign = list(
        foreign_qs.annotate(rank=_rank_expression(rules))
        .order_by("rank", "id")
        .values(*fields, "rank")[:max_nodes]
    )
    foreign_total = len(foreign) if len(foreign) < max_nodes else foreign_qs.count()
    kept = _select(own, foreign, pairs, max_nodes)
    kept_ids = {row["id"] for row in kept}
    graph = nx.Graph()
    graph.add_nodes_from(row["id"] for row in kept)
    profile_of = {row["id"]: row["profile_id"] for row in kept}
    edges = []
    for a, b in pairs:
        if a in kept_ids and b in kept_ids and not graph.has_edge(a, b):
            graph.add_edge(a, b)
            edges.append({"source": a, "target": b, "cross": profile_of[a] != profile_of[b]})
    positions = _layout(graph)
    nodes = []
    for row in kept:
        node = _node(row, live_id)
        node["x"], node["y"] = positions[row["id"]]
        nodes.append(node)
    total = own_total + foreign_total
    return {
        "profile_id": live_id,
        "nodes": nodes,
        "edges": edges,
        "truncated": total > len(kept) or len(pairs) >= LINKS_SCANNED_MAX,
        "total_nodes": total,
    }

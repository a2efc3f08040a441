"""The full rebuild of a workspace's identity graph: recompute who is who from the whole graph
under the current rules, and repair the profiles where the incremental pipeline (which decides
event by event, in arrival order, under the rules of the day) ended elsewhere.

The target partition is a pure function of the graph, the rules and the split blocks:
1. identifiers whose value is blocklisted now are dropped;
2. each connected component is split while it holds more identifiers of a limited type than
   the limit allows (types in priority order): those identifiers become seeds and every other
   identifier joins its nearest seed (multi-source BFS; ties go to the oldest seed);
3. inside each part, profiles that a user split apart (SplitBlock) become seed groups too;
4. adjacent cells of a component are joined back, oldest first, wherever every limit still
   holds and no split block is crossed (so a limit of 2 keeps pairs together).
Then each live profile keeps the part holding its highest-priority identifier; parts holding
several profiles' home merge them (the oldest survives); identifiers in other parts move to
the profile owning that part, or to a new profile; events follow their identifiers.

Running it twice changes nothing the second time: the partition only depends on the graph,
and after the first run every part is exactly one profile."""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import networkx as nx
from django.db import connection, transaction
from django.utils import timezone

from cdp.errors import NotFound
from cdp.models import Workspace, audit
from profiles.identity import hooks
from profiles.identity.extract import Key
from profiles.identity.graph import workspace_graph
from profiles.identity.resolve import lock_workspaces
from profiles.identity.rules import Rules, load_rules
from profiles.identity.services import (
    event_keys,
    profile_recompute,
    profiles_merge,
    reassign_events,
)
from profiles.models import Event, Identity, Profile, ProfileEvent, SplitBlock

SAMPLE_SIZE = 20
EVIDENCE_MAX = 10  # identifiers recorded per merge or per split part
MERGE_RULE = "rebuild"
EVENT_CHUNK = 2_000
EVENT_FIELDS = (
    "id",
    "workspace_id",
    "type",
    "user_id",
    "anonymous_id",
    "previous_id",
    "group_id",
    "traits",
    "context",
)


@dataclass(slots=True)
class RebuildReport:
    workspace_id: int
    applied: bool
    identities: int = 0
    links: int = 0
    components: int = 0
    profiles_before: int = 0
    profiles_after: int = 0
    merges: int = 0
    merge_sample: list[dict[str, Any]] = field(default_factory=list)
    splits: int = 0
    split_sample: list[dict[str, Any]] = field(default_factory=list)
    new_profiles: int = 0
    identities_moved: int = 0
    events_moved: int = 0
    blocklisted_dropped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["merges"] = {"count": data.pop("merges"), "sample": data.pop("merge_sample")}
        data["splits"] = {"count": data.pop("splits"), "sample": data.pop("split_sample")}
        return data


# ---- the target partition ------------------------------------------------------------------


@dataclass(slots=True)
class _Graph:
    """The graph with its node attributes in flat dicts (networkx attribute access is slow)."""

    graph: nx.Graph
    rules: Rules
    kind: dict[int, str]
    value: dict[int, str]
    profile: dict[int, int]
    blocks: dict[int, set[int]]  # live profile -> live profiles it must stay apart from

    @property
    def adj(self) -> Any:
        return self.graph.adj

    def identifier(self, node: int) -> dict[str, str]:
        return {"type": self.kind[node], "value": self.value[node]}

    def by_priority(self, nodes: Iterable[int]) -> list[int]:
        return sorted(nodes, key=lambda node: (self.rules.rank(self.kind[node]), node))


def _voronoi(g: _Graph, part: set[int], seed_groups: Iterable[Iterable[int]]) -> list[set[int]]:
    """Multi-source BFS inside `part`: every node joins the seed group nearest to it; at equal
    distance, the group holding the smallest (oldest) identity id."""
    groups = sorted((sorted(group) for group in seed_groups), key=lambda group: group[0])
    owner: dict[int, int] = {}
    for index, group in enumerate(groups):
        for node in group:
            owner[node] = index
    frontier = list(owner)
    adj = g.adj
    while frontier:  # level by level, so ties are decided by group order, not queue order
        reached: dict[int, int] = {}
        for u in frontier:
            index = owner[u]
            for v in adj[u]:
                if v in part and v not in owner:
                    seen = reached.get(v)
                    if seen is None or index < seen:
                        reached[v] = index
        owner.update(reached)
        frontier = list(reached)
    cells: list[set[int]] = [set() for _ in groups]
    unreached: set[int] = set()
    for node in part:
        index_ = owner.get(node)
        (unreached if index_ is None else cells[index_]).add(node)
    return [cell for cell in cells if cell] + ([unreached] if unreached else [])


def _split_by_limits(g: _Graph, component: set[int]) -> list[set[int]]:
    parts = [component]
    for kind in sorted(g.rules.limits, key=lambda t: (g.rules.rank(t), t)):
        limit = g.rules.limit(kind)
        result: list[set[int]] = []
        for part in parts:
            seeds = [node for node in part if g.kind[node] == kind]
            if len(seeds) > limit:
                result.extend(_voronoi(g, part, ([seed] for seed in seeds)))
            else:
                result.append(part)
        parts = result
    return parts


def _separate_blocked(g: _Graph, part: set[int]) -> list[set[int]]:
    profiles = {g.profile[node] for node in part}
    blocked = [p for p in profiles if g.blocks.get(p, set()) & profiles]
    if not blocked:
        return [part]
    groups: dict[int, list[int]] = defaultdict(list)
    for node in part:
        if g.profile[node] in blocked:
            groups[g.profile[node]].append(node)
    return _voronoi(g, part, groups.values())


def _compatible(
    g: _Graph, counts: tuple[Counter[str], Counter[str]], profiles: tuple[set[int], set[int]]
) -> bool:
    for kind, limit in g.rules.limits.items():
        if counts[0][kind] + counts[1][kind] > limit:
            return False
    return not any(g.blocks.get(p, set()) & profiles[1] for p in profiles[0])


def _coalesce(g: _Graph, cells: list[set[int]]) -> list[set[int]]:
    """Join adjacent cells back, oldest first, wherever limits and split blocks allow."""
    cell_of = {node: index for index, cell in enumerate(cells) for node in cell}
    key = [min(cell) for cell in cells]
    adjacent: list[set[int]] = [set() for _ in cells]
    for index, cell in enumerate(cells):
        for u in cell:
            for v in g.adj[u]:
                other = cell_of.get(v)
                if other is not None and other != index:
                    adjacent[index].add(other)
    limited = g.rules.limits
    counts = [Counter(g.kind[n] for n in cell if g.kind[n] in limited) for cell in cells]
    profiles = [{g.profile[n] for n in cell} for cell in cells]
    parent = list(range(len(cells)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in sorted(range(len(cells)), key=key.__getitem__):
        for j in sorted(adjacent[i], key=key.__getitem__):
            a, b = find(i), find(j)
            if a == b or not _compatible(g, (counts[a], counts[b]), (profiles[a], profiles[b])):
                continue
            root, other = (a, b) if key[a] < key[b] else (b, a)
            parent[other] = root
            counts[root] += counts[other]
            profiles[root] |= profiles[other]
    merged: dict[int, set[int]] = defaultdict(set)
    for index, cell in enumerate(cells):
        merged[find(index)] |= cell
    return [merged[root] for root in sorted(merged, key=key.__getitem__)]


def _partition(g: _Graph, component: set[int]) -> list[set[int]]:
    if len(component) == 1:
        return [component]
    cells = [cell for part in _split_by_limits(g, component) for cell in _separate_blocked(g, part)]
    return _coalesce(g, cells) if len(cells) > 1 else cells


# ---- from the partition to merges and splits ----------------------------------------------


@dataclass(slots=True)
class _Merge:
    winner: int
    loser: int
    part: int
    evidence: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Plan:
    parts: list[set[int]]
    part_of: dict[int, int]
    home: dict[int, int]  # live profile -> the part it keeps
    target: list[int]  # per part: the profile that ends up with it; -(k + 1) = a new profile
    merges: list[_Merge]
    moves: dict[int, dict[int, list[int]]]  # split profile -> part -> its identifiers there

    def after_merges(self, profile_id: int) -> int:
        """The profile a live profile is (part of) once the merges are done."""
        home = self.home.get(profile_id)
        return profile_id if home is None else self.target[home]

    def final(self, node: int) -> int:
        return self.target[self.part_of[node]]


def _plan(g: _Graph, parts: list[set[int]]) -> _Plan:
    part_of = {node: index for index, part in enumerate(parts) for node in part}
    best: dict[int, tuple[int, int]] = {}
    for node, profile_id in g.profile.items():
        candidate = (g.rules.rank(g.kind[node]), node)
        if profile_id not in best or candidate < best[profile_id]:
            best[profile_id] = candidate
    home = {profile_id: part_of[node] for profile_id, (_, node) in best.items()}
    homes_in: dict[int, list[int]] = defaultdict(list)
    for profile_id, part in home.items():
        homes_in[part].append(profile_id)
    target: list[int] = []
    merges: list[_Merge] = []
    for index in range(len(parts)):
        owners = sorted(homes_in.get(index, []))
        target.append(owners[0] if owners else -(index + 1))
        merges.extend(_Merge(owners[0], loser, index) for loser in owners[1:])
    moves: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for node, profile_id in g.profile.items():
        if part_of[node] != home[profile_id]:
            moves[profile_id][part_of[node]].append(node)
    plan = _Plan(parts, part_of, home, target, merges, moves)
    if merges:
        members: dict[tuple[int, int], list[int]] = defaultdict(list)
        for node, profile_id in g.profile.items():
            members[(part_of[node], profile_id)].append(node)
        for merge in merges:
            merge.evidence = _evidence(
                g,
                plan.parts[merge.part],
                sorted(members[(merge.part, merge.loser)]),
                set(members[(merge.part, merge.winner)]),
            )
    return plan


def _evidence(
    g: _Graph, part: set[int], sources: list[int], targets: set[int]
) -> list[dict[str, str]]:
    """The identifiers on a shortest path from the loser's identifiers to the winner's, inside
    their part: what links the two profiles."""
    parent: dict[int, int | None] = dict.fromkeys(sources)
    queue = deque(sources)
    while queue:
        u = queue.popleft()
        if u in targets:
            path: list[int] = []
            step: int | None = u
            while step is not None:
                path.append(step)
                step = parent[step]
            return [g.identifier(n) for n in reversed(path)][:EVIDENCE_MAX]
        for v in sorted(g.adj[u]):
            if v in part and v not in parent:
                parent[v] = u
                queue.append(v)
    return [g.identifier(n) for n in sources[:EVIDENCE_MAX]]


# ---- loading ---------------------------------------------------------------------------


def _blocks(workspace_id: int, live: set[int]) -> dict[int, set[int]]:
    blocks: dict[int, set[int]] = defaultdict(set)
    pairs = SplitBlock.objects.filter(workspace_id=workspace_id).values_list(
        "profile_a_id", "profile_b_id"
    )
    for a, b in pairs.iterator():
        if a in live and b in live and a != b:
            blocks[a].add(b)
            blocks[b].add(a)
    return dict(blocks)


def _load(workspace_id: int, report: RebuildReport) -> tuple[_Graph, list[int]]:
    rules = load_rules(workspace_id)
    graph = workspace_graph(workspace_id)
    report.identities = graph.number_of_nodes()
    report.links = graph.number_of_edges()
    blocklisted = sorted(
        node for node, value in graph.nodes(data="value") if rules.blocked(str(value))
    )
    graph.remove_nodes_from(blocklisted)
    report.blocklisted_dropped = len(blocklisted)
    profile = dict(graph.nodes(data="profile_id"))
    live = set(
        Profile.objects.filter(workspace_id=workspace_id, merged_into__isnull=True).values_list(
            "id", flat=True
        )
    )
    report.profiles_before = len(live)
    g = _Graph(
        graph=graph,
        rules=rules,
        kind=dict(graph.nodes(data="type")),
        value=dict(graph.nodes(data="value")),
        profile=profile,
        blocks=_blocks(workspace_id, set(profile.values()) & live),
    )
    return g, blocklisted


# ---- events ----------------------------------------------------------------------------


def _events(workspace_id: int, event_ids: list[int]) -> Iterable[Event]:
    for start in range(0, len(event_ids), EVENT_CHUNK):
        chunk = event_ids[start : start + EVENT_CHUNK]
        yield from Event.objects.filter(workspace_id=workspace_id, id__in=chunk).only(*EVENT_FIELDS)


def _profile_event_ids(workspace_id: int, profile_ids: Iterable[int]) -> dict[int, int]:
    """event id -> profile id, for the events of these profiles."""
    ids = sorted(set(profile_ids))
    if not ids:
        return {}
    rows = ProfileEvent.objects.filter(workspace_id=workspace_id, profile_id__in=ids).values_list(
        "event_id", "profile_id"
    )
    return dict(rows.iterator(chunk_size=10_000))


def _receivers(plan: _Plan) -> dict[int, set[int]]:
    """Split profile (as it is after the merges) -> the profiles receiving its identifiers."""
    receivers: dict[int, set[int]] = defaultdict(set)
    for profile_id, by_part in plan.moves.items():
        for part in by_part:
            receivers[plan.after_merges(profile_id)].add(plan.target[part])
    return receivers


def _simulate_event_moves(workspace_id: int, g: _Graph, plan: _Plan) -> int:
    """For a dry run: how many events would change profile (mirrors the apply path: merges
    move all of the loser's events, then reassign_events on each split profile)."""
    receivers = _receivers(plan)
    losers = {merge.loser for merge in plan.merges}
    plain_losers = [p for p in losers if plan.after_merges(p) not in receivers]
    moved = ProfileEvent.objects.filter(
        workspace_id=workspace_id, profile_id__in=plain_losers
    ).count()
    replayed = [p for p in plan.home if plan.after_merges(p) in receivers]
    profile_of = _profile_event_ids(workspace_id, replayed)
    owner_of: dict[Key, int] = {(g.kind[n], g.value[n]): plan.final(n) for n in g.profile}
    for event in _events(workspace_id, sorted(profile_of)):
        before = profile_of[event.pk]
        after = plan.after_merges(before)
        for key in event_keys(event, g.rules):
            owner = owner_of.get(key)
            if owner is not None:
                if owner in receivers[after]:
                    after = owner
                break
        moved += after != before
    return moved


# ---- applying --------------------------------------------------------------------------


def _move_identities(rows: list[tuple[int, int]]) -> None:
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE profiles_identity i SET profile_id = r.p, origin_profile_id = r.p "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS r(id, p) WHERE i.id = r.id",
            [[node for node, _ in rows], [profile for _, profile in rows]],
        )


def _inherit_blocks(
    workspace_id: int, g: _Graph, plan: _Plan, resolve: dict[int, int]
) -> set[tuple[int, int]]:
    """Identifiers a user kept apart from a profile stay apart from it on their new profile."""
    pairs: set[tuple[int, int]] = set()
    for profile_id, by_part in plan.moves.items():
        for other in g.blocks.get(profile_id, set()):
            kept_apart = plan.after_merges(other)
            for part in by_part:
                receiver = resolve.get(plan.target[part], plan.target[part])
                if receiver != kept_apart:
                    pairs.add((min(receiver, kept_apart), max(receiver, kept_apart)))
    SplitBlock.objects.bulk_create(
        [SplitBlock(workspace_id=workspace_id, profile_a_id=a, profile_b_id=b) for a, b in pairs],
        ignore_conflicts=True,
    )
    return pairs


def _apply(workspace_id: int, g: _Graph, plan: _Plan, blocklisted: list[int]) -> dict[int, int]:
    """Write the plan; returns placeholder -> id of the profiles it created."""
    if blocklisted:
        Identity.objects.filter(workspace_id=workspace_id, pk__in=blocklisted).delete()
    for merge in plan.merges:
        profiles_merge(
            workspace_id=workspace_id,
            winner_id=merge.winner,
            loser_id=merge.loser,
            rule=MERGE_RULE,
            identifiers_=merge.evidence,
            detail={"rebuild": True},
        )
    placeholders = sorted({t for t in plan.target if t < 0}, reverse=True)
    now = timezone.now()
    created = Profile.objects.bulk_create(
        [Profile(workspace_id=workspace_id, created_at=now, updated_at=now) for _ in placeholders]
    )
    resolve = {placeholder: p.pk for placeholder, p in zip(placeholders, created, strict=True)}

    def real(profile_id: int) -> int:
        return resolve.get(profile_id, profile_id)

    _move_identities(
        [
            (node, real(plan.target[part]))
            for by_part in plan.moves.values()
            for part, nodes in by_part.items()
            for node in nodes
        ]
    )
    _inherit_blocks(workspace_id, g, plan, resolve)
    rules = g.rules
    for source, targets in sorted(_receivers(plan).items()):
        candidates = {real(t) for t in targets}
        event_ids = list(
            ProfileEvent.objects.filter(workspace_id=workspace_id, profile_id=source).values_list(
                "event_id", flat=True
            )
        )
        reassign_events(
            workspace_id=workspace_id,
            rules=rules,
            events=list(_events(workspace_id, event_ids)),
            from_profile=source,
            candidates=candidates,
        )
        with connection.cursor() as cursor:
            # the moved events now belong to their new profile (a later split restores by it)
            cursor.execute(
                "UPDATE profiles_profileevent SET origin_profile_id = profile_id "
                "WHERE event_id = ANY(%s) AND profile_id <> %s",
                [event_ids, source],
            )
        for target in sorted(candidates):
            hooks.run_split_hooks(workspace_id, source, target)
    return resolve


def _touched(plan: _Plan) -> set[int]:
    touched = {merge.winner for merge in plan.merges}
    for source, targets in _receivers(plan).items():
        touched.add(source)
        touched.update(targets)
    return touched


def _samples(g: _Graph, plan: _Plan, report: RebuildReport, resolve: dict[int, int]) -> None:
    report.merge_sample = [
        {"winner": m.winner, "loser": m.loser, "identifiers": m.evidence}
        for m in plan.merges[:SAMPLE_SIZE]
    ]
    for profile_id in sorted(plan.moves)[:SAMPLE_SIZE]:
        parts = []
        for part, nodes in sorted(plan.moves[profile_id].items()):
            target = plan.target[part]
            parts.append(
                {
                    "profile": resolve.get(target) if target < 0 else target,
                    "new": target < 0,
                    "count": len(nodes),
                    "identifiers": [g.identifier(n) for n in g.by_priority(nodes)[:EVIDENCE_MAX]],
                }
            )
        report.split_sample.append(
            {"profile": profile_id, "stays_on": plan.after_merges(profile_id), "moved": parts}
        )


def _event_assignment(event_ids: list[int]) -> dict[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_id, profile_id FROM profiles_profileevent WHERE event_id = ANY(%s)",
            [event_ids],
        )
        return dict(cursor.fetchall())


def identity_graph_rebuild(*, workspace_id: int, apply: bool = True) -> RebuildReport:
    """Rebuild the workspace's profiles from its whole identity graph under the current rules
    (see the module docstring). Holds the workspace's identity lock exclusively, so pipeline
    batches wait for it; with apply=False it writes nothing and reports what would change."""
    started = time.monotonic()
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        raise NotFound(f"workspace {workspace_id} does not exist")
    report = RebuildReport(workspace_id=workspace_id, applied=apply)
    with transaction.atomic():
        lock_workspaces([workspace_id], exclusive=True)
        g, blocklisted = _load(workspace_id, report)
        parts: list[set[int]] = []
        for component in nx.connected_components(g.graph):
            report.components += 1
            parts.extend(_partition(g, component))
        plan = _plan(g, parts)
        report.merges = len(plan.merges)
        report.splits = len(plan.moves)
        report.new_profiles = sum(1 for t in plan.target if t < 0)
        report.identities_moved = sum(1 for n, p in g.profile.items() if plan.final(n) != p)
        if not apply:
            report.events_moved = _simulate_event_moves(workspace_id, g, plan)
            report.profiles_after = report.profiles_before - report.merges + report.new_profiles
            _samples(g, plan, report, {})
            transaction.set_rollback(True)  # a dry run leaves no trace, whatever was read
        else:
            split_profiles = set(_receivers(plan))
            movable = {m.loser for m in plan.merges} | {
                p for p in plan.home if plan.after_merges(p) in split_profiles
            }
            before = _profile_event_ids(workspace_id, movable)
            resolve = _apply(workspace_id, g, plan, blocklisted)
            after = _event_assignment(sorted(before))
            report.events_moved = sum(1 for e, p in before.items() if after.get(e) != p)
            touched = {resolve.get(p, p) for p in _touched(plan)}
            if touched:
                profile_recompute(workspace_id=workspace_id, profile_ids=touched)
            report.profiles_after = Profile.objects.filter(
                workspace_id=workspace_id, merged_into__isnull=True
            ).count()
            _samples(g, plan, report, resolve)
            if report.merges or report.splits or report.blocklisted_dropped:
                audit(
                    workspace=workspace,
                    actor=None,
                    action="identity.rebuild",
                    detail={
                        k: v for k, v in report.as_dict().items() if k not in ("merges", "splits")
                    }
                    | {"merges": report.merges, "splits": report.splits},
                )
    report.seconds = round(time.monotonic() - started, 3)
    return report

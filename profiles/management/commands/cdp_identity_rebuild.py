"""Rebuild a workspace's identity graph from scratch under its current rules (see
profiles/identity/rebuild.py), or with --dry-run report what a rebuild would change."""

from __future__ import annotations

from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.models import Workspace
from profiles.identity.rebuild import RebuildReport, identity_graph_rebuild


def _identifiers(items: list[dict[str, str]]) -> str:
    return ", ".join(f"{i['type']}:{i['value']}" for i in items)


class Command(BaseCommand):
    help = (
        "Recompute who is who from the workspace's whole identity graph (connected components, "
        "limit-aware splitting, split blocks), then merge and split profiles to match. Holds "
        "the workspace's identity lock while it runs; running it again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="workspace name")
        parser.add_argument(
            "--dry-run", action="store_true", help="write nothing; report what would change"
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(name=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"no workspace named {options['workspace']!r}")
        report = identity_graph_rebuild(workspace_id=workspace.pk, apply=not options["dry_run"])
        if options["json"]:
            self.stdout.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        else:
            self._print(workspace, report)

    def _print(self, workspace: Workspace, report: RebuildReport) -> None:
        mode = "applied" if report.applied else "dry run, nothing written"
        out = self.stdout.write
        out(f"Identity graph rebuild of workspace {workspace.name!r} ({mode})")
        out(
            f"  graph:      {report.identities:,} identities, {report.links:,} links, "
            f"{report.components:,} components, {report.blocklisted_dropped:,} blocklisted "
            "dropped"
        )
        out(f"  profiles:   {report.profiles_before:,} -> {report.profiles_after:,}")
        out(
            f"  merges:     {report.merges:,}   splits: {report.splits:,}   "
            f"new profiles: {report.new_profiles:,}"
        )
        out(f"  moved:      {report.identities_moved:,} identities, {report.events_moved:,} events")
        out(f"  took:       {report.seconds:.2f} s")
        if report.merge_sample:
            out(f"Merges (first {len(report.merge_sample)}):")
            for m in report.merge_sample:
                out(f"  {m['loser']} -> {m['winner']}  via {_identifiers(m['identifiers'])}")
        if report.split_sample:
            out(f"Splits (first {len(report.split_sample)}):")
            for s in report.split_sample:
                for part in s["moved"]:
                    to = f"profile {part['profile']}"
                    if part["new"]:
                        to = "a new profile" if part["profile"] is None else f"new {to}"
                    out(
                        f"  {s['profile']}: {part['count']} identifier(s) -> {to}: "
                        f"{_identifiers(part['identifiers'])}"
                    )

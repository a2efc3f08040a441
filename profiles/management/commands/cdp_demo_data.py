"""Load realistic demo data: the real CDNOW purchase history as tracking events.

The events go through the collector's own service (normalisation, dead-lettering, dedup by
messageId, storage) exactly as if an SDK had posted them, then through the processing queue
(identity resolution, traits), so the demo shows what real traffic would produce.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from cdp.datasets import DatasetUnavailable
from cdp.models import Workspace
from cdp.services import workspace_bootstrap
from profiles.collector.keys import SourceInfo
from profiles.collector.normalize import now_utc
from profiles.collector.service import collector_ingest
from profiles.demo.cdnow import demo_batches, load_cdnow, user_id_of
from profiles.demo.movielens import load_movielens, movielens_batches
from profiles.identity.rules import rules_row
from profiles.identity.services import identity_rules_update
from profiles.models import Source, SourceKind
from profiles.pipeline import queue
from profiles.services import source_create

SOURCE_NAME = "Demo data (CDNOW)"
DRAIN_SECONDS = 5.0  # per call: a progress line at least this often


@dataclass(slots=True)
class _Totals:
    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    failed: int = 0


class Command(BaseCommand):
    help = (
        "Load demo data built on the real CDNOW purchase history (1997-98, shifted to end "
        "yesterday): browsing, sign-ups, second devices and orders of the first N customers, "
        "sent through the collector and processed. Safe to run again: nothing is stored twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--profiles", type=int, default=2000, help="number of CDNOW customers (max 23570)"
        )
        parser.add_argument("--workspace", default="Demo", help="workspace name")
        parser.add_argument(
            "--seed", type=int, default=1997, help="the same seed gives the same events"
        )
        parser.add_argument(
            "--no-films", action="store_true",
            help="leave out the MovieLens-100k film views given to the first 943 customers",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        if options["profiles"] < 1:
            raise CommandError("--profiles must be at least 1")
        started = time.monotonic()
        try:
            purchases = load_cdnow()
        except DatasetUnavailable as exc:
            raise CommandError(f"cannot load the CDNOW data set: {exc}") from None
        workspace = self._workspace(options["workspace"])
        self._phone_region(workspace)
        source = self._source(workspace)
        batches = list(
            demo_batches(
                purchases, profiles=options["profiles"], seed=options["seed"], now=timezone.now()
            )
        )
        customers = min(options["profiles"], len({p.customer_id for p in purchases}))
        if not options["no_films"]:
            batches += self._films(purchases, customers)
        self.stdout.write(
            f"Sending {sum(len(b) for b in batches):,} events of {customers:,} CDNOW "
            f"customers to workspace {workspace.name!r}, source {source.name!r}"
        )
        totals = self._ingest(source, batches)
        processed = self._process(workspace.pk)
        self._refresh_traits(workspace.pk)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {totals.stored:,} events stored, {totals.duplicates:,} duplicates, "
                f"{totals.failed:,} failed, {processed:,} processed, "
                f"in {time.monotonic() - started:.1f} s"
            )
        )

    def _films(self, purchases: list[Any], customers: int) -> list[list[dict[str, Any]]]:
        """MovieLens-100k's ratings as film views of the first customers (the shop sells
        films too): item-level interactions for the recommendation model to learn from."""
        try:
            ratings, films = load_movielens()
        except DatasetUnavailable as exc:
            self.stdout.write(f"Leaving out the film views: {exc}")
            return []
        people = sorted({p.customer_id for p in purchases})[:customers]
        by_rank = {rank: customer for rank, customer in enumerate(people, start=1)}
        rated = [r for r in ratings if r.user in by_rank]
        return list(
            movielens_batches(rated, films, now=timezone.now(), consent=False,
                              user_id=lambda user: user_id_of(by_rank[user]))
        )  # fmt: skip

    def _workspace(self, name: str) -> Workspace:
        workspace = Workspace.objects.filter(name=name).first()
        if workspace is not None:
            # an existing workspace is used as it is: its members and keys are not touched
            return workspace
        result = workspace_bootstrap(name=name)
        if result.password is not None:
            self.stdout.write(
                f"Created workspace {name!r}; log in as {result.username!r} "
                f"with password {result.password!r}"
            )
        return result.workspace

    def _phone_region(self, workspace: Workspace) -> None:
        """The demo customers are American and half of their phone numbers are written without
        a country code: read those as US numbers unless the workspace chose a region."""
        rules = rules_row(workspace.pk)
        if not rules.phone_region:
            identity_rules_update(workspace=workspace, data={"phone_region": "US"})

    def _source(self, workspace: Workspace) -> SourceInfo:
        source = Source.objects.filter(workspace=workspace, name=SOURCE_NAME).first()
        if source is None:
            source = source_create(workspace=workspace, name=SOURCE_NAME, kind=SourceKind.HTTP)
        if not source.enabled:
            raise CommandError(f"source {SOURCE_NAME!r} is disabled; enable it to load demo data")
        # what the collector's key look-up would give for this source's write key
        return SourceInfo.of(source)

    def _ingest(self, source: SourceInfo, batches: list[list[dict[str, Any]]]) -> _Totals:
        total = sum(len(b) for b in batches)
        totals = _Totals()
        next_report = 0.1
        for batch in batches:
            # no batch-level sentAt, as in a backfill import: each event's timestamp is kept
            # as given instead of being corrected for clock skew against the time received
            result = collector_ingest(
                source=source,
                raw_events=batch,
                body={"batch": batch},
                route_type=None,
                received_at=now_utc(),
                door_size=None,
                kick=False,  # processed below, in this process
            )
            totals.sent += result.received
            totals.stored += result.accepted
            totals.duplicates += result.duplicates
            totals.failed += result.failed
            if totals.sent >= total * next_report or totals.sent == total:
                self._progress("sent", totals.sent, total, _when(batch))
                while next_report <= totals.sent / total:
                    next_report += 0.1
        return totals

    def _process(self, workspace_id: int) -> int:
        """Run the processing queue here until this workspace has nothing left, so the
        profiles exist when the command returns (a Celery worker may not be running yet)."""
        pending = queue.pending_count(workspace_id)
        processed, more = 0, pending > 0
        next_report = 0.1
        while more:
            done, more = queue.drain(workspace_id=workspace_id, max_seconds=DRAIN_SECONDS)
            processed += done
            if pending and (processed >= pending * next_report or not more):
                self._progress("processed", processed, max(pending, processed), None)
                while next_report <= processed / pending:
                    next_report += 0.1
        left = queue.pending_count(workspace_id)
        if left:
            # claimed by a worker of a running platform, which will finish them
            self.stdout.write(f"{left:,} events are being processed by a worker")
        return processed

    def _refresh_traits(self, workspace_id: int) -> None:
        try:
            # being written alongside; the ignore can go once it exists
            from profiles.computed.services import (  # type: ignore[attr-defined,unused-ignore]
                builtin_traits_refresh,
            )
        except ImportError:
            return  # computed traits are not part of this version
        builtin_traits_refresh(workspace_id=workspace_id)

    def _progress(self, what: str, done: int, total: int, at: str | None) -> None:
        percent = 100 * done // total if total else 100
        upto = f" (up to {at})" if at else ""
        self.stdout.write(f"  {percent:3d}%  {what} {done:,} of {total:,} events{upto}")


def _when(batch: list[dict[str, Any]]) -> str | None:
    if not batch:
        return None
    stamp = datetime.fromisoformat(str(batch[-1]["timestamp"]))
    return stamp.date().isoformat()

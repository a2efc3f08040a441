"""Roles for scale-out: tasks reach their queue by name, the launcher's roles check their
options, and two real ingest workers started as a deployment starts them
(`manage.py cdp_run --role worker --queues ingest`) split the work, process every event
exactly once and leave other queues' messages alone."""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError
from django.db.models import Sum
from django.test import Client

from cdp import queues
from cdp import web as web_module
from cdp.celery import app
from cdp.management.commands.cdp_run import MIGRATION_LOCK, Command, Plan, plan_for
from profiles.identity.resolve import IDENTITY_LOCK_NAMESPACE
from profiles.models import Event, EventCounter, Identity, PendingEvent, Profile, ProfileEvent
from profiles.tasks.processing import DRAIN_LEASE_NAMESPACE
from segments.services import EVALUATION_LOCK_NAMESPACE
from tests.fixtures import CeleryTestQueues, make_tenant, post_collector
from tests.test_launcher import Launcher
from tests.test_processing_worker import database_url, wait_for

# --- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        # the pipeline: short drains, latency-bound
        ("profiles.tasks.process_pending_events", queues.INGEST),
        ("profiles.tasks.sweep_pending_events", queues.INGEST),
        # bulk profile maintenance: must not queue ahead of the drains
        ("profiles.tasks.computed_trait_backfill", queues.DEFAULT),
        ("profiles.tasks.computed_traits_refresh_windows", queues.DEFAULT),
        ("profiles.tasks.builtin_traits_refresh_all", queues.DEFAULT),
        ("profiles.tasks.builtin_traits_refresh_workspace", queues.DEFAULT),
        ("profiles.identity.tasks.identity_graph_rebuild_task", queues.DEFAULT),
        ("segments.tasks.segments_process_expiries", queues.DEFAULT),
        ("segments.tasks.segments_refresh_all", queues.DEFAULT),
        ("consent.tasks.retention_enforce_all", queues.DEFAULT),
        ("consent.tasks.privacy_request_execute", queues.DEFAULT),
        # packages whose tasks arrive later land by pattern
        ("activation.tasks.audience_sync", queues.ACTIVATION),
        ("activation.forwarding.tasks.forward_events", queues.ACTIVATION),
        ("segments.ml.tasks.propensity_train", queues.ML),
        ("segments.ml.recommendations.score", queues.ML),
        ("segments.mlx.tasks.not_ml", queues.DEFAULT),
    ],
)
def test_tasks_are_routed_by_name(task: str, queue: str, celery_test_queues: Any) -> None:
    route = app.amqp.router.route({}, task)
    assert route["queue"].name == celery_test_queues.name(queue)


def test_every_task_on_the_beat_schedule_exists_under_its_name() -> None:
    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry


def test_production_queue_names() -> None:
    """Without a prefix: the queues an operator sees on the broker; the default queue keeps
    Celery's name, so messages queued before the split are still consumed."""
    names = {
        queue: queues.broker_queue(queue, prefix="", default_queue="celery")
        for queue in queues.QUEUES
    }
    assert names == {
        "ingest": "ingest",
        "default": "celery",
        "activation": "activation",
        "ml": "ml",
    }
    assert queues.task_routes(prefix="")["activation.*"] == {"queue": "activation"}


def test_advisory_lock_namespaces_are_distinct() -> None:
    spaces = [MIGRATION_LOCK[0], IDENTITY_LOCK_NAMESPACE, DRAIN_LEASE_NAMESPACE]
    assert len({*spaces, EVALUATION_LOCK_NAMESPACE}) == 4


# --- the launcher's roles ------------------------------------------------------------------


def plan(*argv: str, embedded: bool = False) -> Plan:
    """The launcher's plan for a command line, through its real argument parser."""
    options = vars(Command().create_parser("manage.py", "cdp_run").parse_args(list(argv)))
    return plan_for(options, embedded_database=embedded, embedded_broker=embedded)


def test_role_all_is_everything_on_one_machine_as_before() -> None:
    everything = plan()
    assert (everything.web, everything.worker, everything.beat) == (True, True, True)
    assert everything.migrate and everything.bootstrap
    assert everything.queues == queues.QUEUES
    assert (everything.host, everything.port) == ("127.0.0.1", 8000)
    assert (everything.workers, everything.threads) == (3, 16)
    assert plan(embedded=True).role == "all"  # the embedded services are for this role
    web_only = plan("--no-worker", "--port", "9000")
    assert (web_only.web, web_only.worker, web_only.beat, web_only.port) == (
        True,
        False,
        False,
        9000,
    )


def test_each_role_runs_its_part_only() -> None:
    worker = plan("--role", "worker", "--queues", "ingest, default,ingest", "--concurrency", "4")
    assert (worker.web, worker.worker, worker.beat) == (False, True, False)
    assert worker.queues == ("ingest", "default") and worker.concurrency == 4
    assert not worker.migrate and not worker.bootstrap
    web = plan("--role", "web", "--workers", "9", "--threads", "4")
    assert (web.web, web.worker, web.beat, web.workers, web.threads) == (True, False, False, 9, 4)
    assert not web.migrate and not web.bootstrap
    assert plan("--role", "web", "--migrate").migrate
    beat = plan("--role", "beat")
    assert (beat.web, beat.worker, beat.beat) == (False, False, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", "worker", "--port", "9000"], "--port does not apply to --role worker"),
        (["--role", "beat", "--queues", "ingest"], "--queues does not apply to --role beat"),
        (["--role", "web", "--concurrency", "3"], "--concurrency does not apply to --role web"),
        (["--role", "worker", "--threads", "8"], "--threads does not apply to --role worker"),
        (["--threads", "0"], "--threads 0: expected a positive number"),
        (["--role", "web", "--demo-data"], "--demo-data does not apply to --role web"),
        (["--role", "worker", "--workspace", "X"], "--workspace does not apply"),
        (["--role", "worker", "--no-worker"], "--no-worker does not apply"),
        (["--role", "worker", "--queues", "ingest,ml2"], "unknown queue 'ml2'"),
        (["--role", "worker", "--queues", " , "], "--queues: no queue named"),
        (["--no-worker", "--queues", "ingest"], "there is no worker with --no-worker"),
        (["--role", "worker", "--concurrency", "0"], "--concurrency 0: expected a positive"),
    ],
)
def test_options_that_do_not_fit_the_role_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        plan(*argv)


@pytest.mark.parametrize("role", ["web", "worker", "beat"])
def test_a_role_needs_the_shared_database_and_broker(role: str) -> None:
    with pytest.raises(CommandError) as error:
        plan("--role", role, embedded=True)
    text = str(error.value)
    assert "DATABASE_URL" in text and "REDIS_URL" in text and "--role all" in text
    options = vars(Command().create_parser("manage.py", "cdp_run").parse_args(["--role", role]))
    with pytest.raises(CommandError, match=r"not set: REDIS_URL \(or CELERY_BROKER_URL\)\)"):
        plan_for(options, embedded_database=False, embedded_broker=True)


# --- two ingest workers --------------------------------------------------------------------

SUCCEEDED = re.compile(
    r"Task profiles\.tasks\.process_pending_events\[[^\]]+\] succeeded in [\d.e-]+s: (\d+)"
)
WORKSPACES = 6
ROUNDS = 4
BATCH = 100
PEOPLE = 30  # per workspace


def processed_by(worker: Launcher) -> int:
    """Events this worker processed, from its log: Celery logs each task's result, and a
    drain returns how many events it processed (its fan-out kicks return 0)."""
    return sum(int(match) for match in SUCCEEDED.findall(worker.output))


def queued(queue: str) -> int:
    with app.connection_for_read() as connection:
        return int(
            connection.default_channel.queue_declare(queue=queue, passive=True).message_count
        )


def test_two_ingest_workers_split_the_work_and_process_each_event_once(
    transactional_db: Any, celery_test_queues: CeleryTestQueues, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        **celery_test_queues.env(),
        "CDP_DATA_DIR": str(tmp_path),
        # small batches: each drain takes several, so the work is spread over time too
        "CDP_PROCESS_BATCH_SIZE": "50",
        "PYTHONUNBUFFERED": "1",
    }
    argv = ["--role", "worker", "--queues", "ingest", "--concurrency", "2"]
    workers = [Launcher(argv, env), Launcher(argv, env)]
    # the deployment's one beat: its sweeper picks up events whose kick the collector's
    # throttle skipped (one kick per workspace per CDP_KICK_INTERVAL_MS)
    # (its activation tick is kept out of the way: the test counts the activation queue)
    beat = Launcher(
        ["--role", "beat"],
        {**env, "CDP_SWEEP_SECONDS": "2", "CDP_ACTIVATION_TICK_SECONDS": "3600"},
    )
    try:
        for worker in workers:
            assert wait_for(lambda w=worker: " ready." in w.output, timeout=90), worker.tail()
        # work for the other queues, sent while the ingest workers listen
        app.send_task("activation.tasks.scale_out_probe")
        app.send_task("segments.ml.tasks.scale_out_probe")
        app.send_task("segments.tasks.segments_refresh_all")

        tenants = [make_tenant(f"Scale{n}") for n in range(WORKSPACES)]
        sent: Counter[tuple[int, str]] = Counter()
        client = Client()
        for _ in range(ROUNDS):
            for tenant in tenants:
                batch = []
                for i in range(BATCH):
                    user = f"person-{i % PEOPLE}"
                    sent[(tenant.workspace.pk, user)] += 1
                    batch.append(
                        {
                            "type": "track",
                            "event": "Viewed",
                            "userId": user,
                            "messageId": str(uuid.uuid4()),
                        }
                    )
                answer = post_collector(
                    client, "/v1/batch", {"batch": batch}, write_key=tenant.write_key
                )
                assert answer.status_code == 200, answer.content
        total = WORKSPACES * ROUNDS * BATCH

        assert wait_for(lambda: not PendingEvent.objects.exists(), timeout=120), (
            f"{PendingEvent.objects.count()} events left\n{workers[0].tail()}{workers[1].tail()}"
        )
        # each event: stored once, given to one profile once, counted once
        assert Event.objects.count() == total
        assert ProfileEvent.objects.count() == total
        assert set(ProfileEvent.objects.values_list("event_id", flat=True)) == set(
            Event.objects.values_list("id", flat=True)
        )
        assert EventCounter.objects.aggregate(n=Sum("count"))["n"] == total
        counts = {
            (identity.workspace_id, identity.value): identity.profile.event_count
            for identity in Identity.objects.filter(type="user_id").select_related("profile")
        }
        assert counts == dict(sent)
        assert Profile.objects.count() == WORKSPACES * PEOPLE

        # both workers did part of it, and together exactly all of it
        wait_for(lambda: sum(map(processed_by, workers)) >= total, timeout=15)
        shares = [processed_by(worker) for worker in workers]
        assert sum(shares) == total, shares
        assert all(shares), f"one worker did everything: {shares}"

        # an ingest-only worker leaves every other queue's messages where they are
        assert queued(celery_test_queues.name(queues.ACTIVATION)) == 1
        assert queued(celery_test_queues.name(queues.ML)) == 1
        assert queued(celery_test_queues.name(queues.DEFAULT)) >= 1
        for worker in workers:
            assert "scale_out_probe" not in worker.output
            assert "Task segments.tasks.segments_refresh_all[" not in worker.output
        for launcher in [*workers, beat]:
            launcher.interrupt_and_wait(timeout=30)
    finally:
        for launcher in [*workers, beat]:
            launcher.cleanup()


def test_the_web_server_runs_granian_with_threads() -> None:
    """granian (cdp/web.py): a request waiting on Postgres holds a thread, the collector's
    concurrent requests share one INSERT (profiles/collector/storage.py), SDK connections stay
    open (granian keeps them alive)."""
    specs = Command()._commands(plan("--workers", "3", "--threads", "12"))
    web = next(spec.argv for spec in specs if spec.key == "web")
    assert web[1:3] == ["-m", "cdp.web"]
    flags = dict(zip(web, web[1:], strict=False))
    assert flags["--workers"] == "3" and flags["--threads"] == "12"
    args = web_module.build_parser().parse_args(web[3:])
    assert (args.bind, args.workers, args.threads) == (("127.0.0.1", 8000), 3, 12)

"""Publishing a segment while its people's events are being processed misses nobody: the
publish waits for the batches in flight (they hold the workspace's identity lock, shared;
the publish takes it exclusively), so its evaluation sees what they committed, and batches
that start after it load the new definition."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from profiles.pipeline import queue, stages
from segments.models import Membership
from segments.services import segment_create, segment_publish
from tests.fixtures import Tenant, post_collector

pytestmark = pytest.mark.django_db(transaction=True)
PEOPLE = 60


@pytest.fixture
def slow_commit() -> Any:
    """A stage after the segments stage that holds the first batch open for a while: the
    window in which a publish used to miss the batch's (not yet committed) profiles."""
    started = threading.Event()

    def hold(batch: stages.Batch) -> None:
        if not started.is_set():
            started.set()
            time.sleep(1.5)

    stages.register("test-slow-commit", hold, order=60)
    yield started
    stages._STAGES.pop("test-slow-commit", None)


def test_a_publish_during_processing_misses_no_member(
    tenant_a: Tenant, slow_commit: threading.Event
) -> None:
    rule = {"trait": "cohort", "op": "eq", "value": "X"}
    segment = segment_create(workspace=tenant_a.workspace, name="Cohort X", rule=rule)
    batch = [
        {
            "type": "identify",
            "userId": f"p-{n}",
            "traits": {"cohort": "X"},
            "messageId": str(uuid.uuid4()),
        }
        for n in range(PEOPLE)
    ]
    answer = post_collector(Client(), "/v1/batch", {"batch": batch}, write_key=tenant_a.write_key)
    assert answer.status_code == 200

    def process() -> None:
        try:
            while queue.process_batch(batch_size=20):
                pass
        finally:
            connection.close()

    worker = threading.Thread(target=process)
    worker.start()
    assert slow_commit.wait(10)  # a batch is in flight, its segment stage already run
    segment_publish(segment=segment)
    worker.join(30)
    members = Membership.objects.filter(segment=segment, exited_at__isnull=True).count()
    assert members == PEOPLE  # at once: not at the next scheduled refresh

"""Shared fixtures of the segments tests: a workspace holding real purchases."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from consent.services import purposes_install_defaults
from profiles.demo.cdnow import demo_batches, load_cdnow
from profiles.pipeline import queue
from tests.fixtures import Tenant, post_collector

CUSTOMERS = 4_000


@pytest.fixture
def cdnow(tenant_a: Tenant, django_db_blocker: Any) -> Tenant:
    purposes_install_defaults(workspace=tenant_a.workspace)
    started = time.monotonic()
    batches = demo_batches(load_cdnow(), profiles=CUSTOMERS, seed=1997, now=timezone.now())
    client = Client()
    sent = 0
    for batch in batches:
        response = post_collector(
            client, "/v1/batch", {"batch": batch}, write_key=tenant_a.write_key
        )
        assert response.status_code == 200, response.content
        sent += len(batch)
    while queue.drain(batch_size=2000)[1]:
        pass
    print(f"loaded {sent:,} events in {time.monotonic() - started:.1f} s")
    return tenant_a

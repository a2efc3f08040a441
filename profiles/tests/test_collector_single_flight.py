"""With gunicorn's threads, many requests of one process miss the same cache at the same
moment (the write key every CDP_KEY_CACHE_SECONDS, the door's list size when the gate's copy
expires). One of them reads it; the others do not each open a database connection for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from profiles.collector import door, keys
from profiles.collector.keys import SourceInfo


def info(name: str) -> SourceInfo:
    return SourceInfo(
        source_id=1,
        workspace_id=1,
        name=name,
        enabled=True,
        rate_limit_per_second=100,
        max_event_bytes=1000,
        allowed_origins=(),
        dead_letter_quota=10,
    )


def together(count: int, work: Any) -> list[tuple[Any, float]]:
    """Runs `work` in `count` threads released at once: (result, seconds it took) each."""
    start = threading.Barrier(count)
    results: list[tuple[Any, float]] = [(None, 0.0)] * count

    def run(index: int) -> None:
        start.wait()
        began = time.monotonic()
        value = work()
        results[index] = (value, time.monotonic() - began)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    return results


@pytest.fixture
def slow_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    reads: list[str] = []

    def read(key: str) -> SourceInfo:
        reads.append(key)
        time.sleep(0.3)
        return info(f"read {len(reads)}")

    monkeypatch.setattr(keys, "_read", read)
    keys.forget_all()
    yield reads
    keys.forget_all()


def test_an_unknown_key_is_read_once_for_all_the_threads_asking(slow_reads: list[str]) -> None:
    results = together(8, lambda: keys.lookup("WK_same"))
    assert slow_reads == ["WK_same"]
    assert {value.name for value, _ in results} == {"read 1"}


def test_an_expired_key_is_read_by_one_thread_while_the_others_answer_at_once(
    slow_reads: list[str],
) -> None:
    keys._cache["WK_same"] = (time.monotonic() - 1, info("a moment ago"))
    results = together(8, lambda: keys.lookup("WK_same"))
    assert slow_reads == ["WK_same"]
    names = sorted(value.name for value, _ in results)
    assert names == ["a moment ago"] * 7 + ["read 1"]
    assert sorted(took for _, took in results)[6] < 0.2  # the seven did not wait for the read
    fresh = keys.lookup("WK_same")  # and the fresh one is used from then on
    assert fresh is not None and fresh.name == "read 1"


def test_the_door_size_is_counted_once_for_the_requests_asking_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts: list[int] = []

    def size(*, workspace_id: int) -> int:
        counts.append(workspace_id)
        time.sleep(0.3)
        return 42

    monkeypatch.setattr(door, "size", size)
    results = together(8, lambda: door.shared_size(workspace_id=7))
    assert counts == [7]
    assert {value for value, _ in results} == {42}
    door.shared_size(workspace_id=7)  # a later request counts again (nothing is kept)
    assert counts == [7, 7]


def test_when_the_count_fails_the_others_count_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def size(*, workspace_id: int) -> int:
        calls.append(workspace_id)
        if len(calls) == 1:
            time.sleep(0.3)
            raise ConnectionError("database went away")
        return 5

    monkeypatch.setattr(door, "size", size)

    def ask() -> Any:
        try:
            return door.shared_size(workspace_id=3)
        except ConnectionError as exc:
            return exc

    results = [value for value, _ in together(4, ask)]
    assert sum(isinstance(r, ConnectionError) for r in results) == 1
    assert sorted(r for r in results if not isinstance(r, ConnectionError)) == [5, 5, 5]

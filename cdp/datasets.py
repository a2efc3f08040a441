"""Real data sets for demo data, tests and evaluation, read out of wheels on PyPI.

Nothing can be downloaded from the internet at run time except packages from the registry,
so each data set is named by the wheel that ships it: a pinned requirement, the wheel's
sha256 and the member path inside it. The wheel is fetched once with pip (no install, no
dependencies, nothing imported from it), kept in a cache folder shared by every checkout on
the machine, and checked against its sha256 on every read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

PIP_TIMEOUT_SECONDS = 300


class DatasetUnavailable(Exception):
    """A data set could not be had; the message says what failed and how to fix it."""


@dataclass(frozen=True, slots=True)
class Dataset:
    requirement: str  # exact pin, so the sha256 below stays right
    wheel: str  # the file name pip saves it under
    sha256: str
    member: str  # path of the data file inside the wheel


DATASETS: dict[str, Dataset] = {
    # CDNOW: 69,659 purchases of 23,570 customers, 1997-1998
    "cdnow": Dataset(
        requirement="lifetimes==0.11.3",
        wheel="Lifetimes-0.11.3-py3-none-any.whl",
        sha256="261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8",
        member="lifetimes/datasets/CDNOW_master.txt",
    ),
    # MovieLens-100k ratings: 100,000 ratings, 943 users, 1,682 items
    "ml-100k": Dataset(
        requirement="recbole==1.2.1",
        wheel="recbole-1.2.1-py3-none-any.whl",
        sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        member="recbole/dataset_example/ml-100k/ml-100k.inter",
    ),
    # MovieLens-100k items: title, release year, genres of the 1,682 films (same wheel)
    "ml-100k-items": Dataset(
        requirement="recbole==1.2.1",
        wheel="recbole-1.2.1-py3-none-any.whl",
        sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        member="recbole/dataset_example/ml-100k/ml-100k.item",
    ),
    # an e-commerce clickstream (gzip-compressed CSV)
    "ecom": Dataset(
        requirement="retentioneering==5.2.4",
        wheel="retentioneering-5.2.4-py3-none-any.whl",
        sha256="f4ab91b67c6deed93728bfb6e503adfe304f101a53e9112ee0219b304b0f3b1a",
        member="retentioneering/datasets/ecom.csv.gz",
    ),
}


def cache_dir() -> Path:
    """$CDP_DATA_DIR/datasets when the project's data folder is set, else a per-user cache:
    wheels never change, so every checkout on the machine can share one download."""
    data_dir = os.environ.get("CDP_DATA_DIR")
    if data_dir:
        return Path(data_dir) / "datasets"
    return Path.home() / ".cache" / "cdp" / "datasets"


def dataset_bytes(name: str, *, directory: Path | None = None) -> bytes:
    """The data file of data set `name`, downloading its wheel on first use."""
    spec = DATASETS.get(name)
    if spec is None:
        known = ", ".join(sorted(DATASETS))
        raise DatasetUnavailable(f"unknown data set {name!r}; known: {known}")
    folder = directory or cache_dir()
    wheel = folder / spec.wheel
    if not wheel.is_file():
        _download(spec, folder)
    _verify(spec, wheel)
    return _read_member(spec, wheel)


def _download(spec: Dataset, folder: Path) -> None:
    """pip download into a private temporary folder, then move the wheel into place in one
    rename, so two processes fetching at once never see a half-written file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
    except OSError as exc:
        raise DatasetUnavailable(
            f"cannot write the data set cache {folder}: {exc}; set CDP_DATA_DIR to a writable "
            "folder"
        ) from None
    try:
        _pip_download(spec, staging, folder)
        saved = sorted(staging.glob("*.whl"))
        if len(saved) != 1:
            raise DatasetUnavailable(
                f"pip download {spec.requirement} saved {len(saved)} wheels, expected 1"
            )
        os.replace(saved[0], folder / spec.wheel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pip_download(spec: Dataset, staging: Path, folder: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        spec.requirement,
        "-d",
        str(staging),
    ]
    how_to_fix = (
        f"The data set ships inside the wheel {spec.wheel}. Without network access to PyPI, "
        f"fetch it on another machine with `pip download --no-deps --only-binary=:all: "
        f"{spec.requirement}` and copy the .whl file into {folder} (or set CDP_DATA_DIR)."
    )
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        raise DatasetUnavailable(
            f"pip download {spec.requirement} took longer than {PIP_TIMEOUT_SECONDS} s. "
            + how_to_fix
        ) from None
    except OSError as exc:
        raise DatasetUnavailable(f"could not run pip: {exc}. " + how_to_fix) from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()
        last = output[-1] if output else "no output"
        raise DatasetUnavailable(
            f"pip download {spec.requirement} failed (exit {done.returncode}: {last}). "
            + how_to_fix
        )


def _verify(spec: Dataset, wheel: Path) -> None:
    digest = sha256()
    with wheel.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != spec.sha256:
        # a corrupt or substituted file must not be used, nor stay around to be used next time
        wheel.unlink(missing_ok=True)
        raise DatasetUnavailable(
            f"{wheel} has sha256 {digest.hexdigest()}, expected {spec.sha256}; the file was "
            "deleted. Run again to download it afresh."
        )


def _read_member(spec: Dataset, wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(spec.member)
    except KeyError:
        raise DatasetUnavailable(
            f"{wheel.name} ({spec.requirement}) has no file {spec.member}; the data set "
            "registry in cdp/datasets.py names the wrong member"
        ) from None
    except zipfile.BadZipFile as exc:
        raise DatasetUnavailable(f"{wheel} is not a readable wheel: {exc}") from None

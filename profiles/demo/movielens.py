"""MovieLens-100k as product events: 100,000 ratings of 1,682 films by 943 people
(1997-98), read out of the recbole wheel, each rating sent as a `Product Viewed` event of the
film (its title as the name, its first genre as the category) — real item-level interactions
for recommendations to learn from.

The demo gives them to the first 943 CDNOW customers (the shop sells films too: the two data
sets cover the same two years), the tests to people of their own. Timestamps move by whole
days so that the last rating falls on yesterday. Each person's first event carries the
consent banner's choices (Segment's convention): personalisation allowed for most."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any

PERSONALISATION_SHARE = 0.85


@dataclass(frozen=True, slots=True)
class Rating:
    user: int
    item: int
    rating: float
    at: datetime


@dataclass(frozen=True, slots=True)
class Film:
    item: int
    title: str
    year: str
    genres: tuple[str, ...]


def parse_ratings(data: bytes) -> list[Rating]:
    """recbole's ml-100k.inter: a header, then user, item, rating, unix time (tab-separated)."""
    rows = []
    for line in data.decode().splitlines()[1:]:
        user, item, rating, stamp = line.split("\t")
        rows.append(Rating(int(user), int(item), float(rating),
                           datetime.fromtimestamp(float(stamp), tz=UTC)))  # fmt: skip
    return rows


def parse_films(data: bytes) -> dict[int, Film]:
    """recbole's ml-100k.item: item, title, year, genres (space-separated), latin-1."""
    films = {}
    for line in data.decode("latin-1").splitlines()[1:]:
        parts = line.split("\t")
        item, title = int(parts[0]), parts[1].strip()
        year = parts[2].strip() if len(parts) > 2 else ""
        genres = tuple(parts[3].split()) if len(parts) > 3 else ()
        films[item] = Film(item, title, year, genres)
    return films


def load_movielens() -> tuple[list[Rating], dict[int, Film]]:
    from cdp.datasets import dataset_bytes

    return parse_ratings(dataset_bytes("ml-100k")), parse_films(dataset_bytes("ml-100k-items"))


def product_id_of(item: int) -> str:
    return f"film-{item:04d}"


def _message_id(user: int, n: int) -> str:
    digest = sha256(f"ml-100k:{user}:{n}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def movielens_batches(
    ratings: list[Rating],
    films: dict[int, Film],
    *,
    now: datetime,
    user_id: Callable[[int], str] = lambda user: f"ml-{user:04d}",
    users: int | None = None,
    seed: int = 100,
    batch_size: int = 500,
    consent: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """The ratings (of the first `users` people, by id) as `Product Viewed` events, oldest
    first, in batches as an SDK posts them to /v1/batch; with `consent`, each person's first
    event carries their consent banner choices (the demo's people have made theirs)."""
    if not ratings:
        return
    shift = (now.astimezone(UTC).date() - timedelta(days=1)) - max(r.at for r in ratings).date()
    chosen = sorted({r.user for r in ratings})[:users] if users else None
    keep = set(chosen) if chosen is not None else None
    rows = sorted(
        (r for r in ratings if keep is None or r.user in keep),
        key=lambda r: (r.at, r.user, r.item),
    )
    first: set[int] = set()
    counts: dict[int, int] = {}
    batch: list[dict[str, Any]] = []
    for r in rows:
        film = films.get(r.item)
        counts[r.user] = counts.get(r.user, 0) + 1
        at = r.at + shift
        properties: dict[str, Any] = {
            "product_id": product_id_of(r.item),
            "name": film.title if film else f"Film {r.item}",
            "category": film.genres[0] if film and film.genres else "Film",
            "rating": r.rating,
        }
        if film and film.year:
            properties["release_year"] = film.year
        event: dict[str, Any] = {
            "type": "track",
            "event": "Product Viewed",
            "messageId": _message_id(r.user, counts[r.user]),
            "userId": user_id(r.user),
            "properties": properties,
            "timestamp": at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
        }
        if consent and r.user not in first:
            first.add(r.user)
            rng = random.Random(f"{seed}:{r.user}")  # noqa: S311 - not secret
            event["context"]["consent"] = {
                "categoryPreferences": {
                    "analytics": True,
                    "personalization": rng.random() < PERSONALISATION_SHARE,
                }
            }
        batch.append(event)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch

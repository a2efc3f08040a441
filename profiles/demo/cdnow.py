"""Demo events built on the real CDNOW purchase history (1997-98, 23,570 customers).

Every CDNOW purchase becomes one `Order Completed` with its real amount and quantity, on its
real date shifted so the last day of the data set is yesterday. Around the purchases the
generator adds what a web shop's tracking would also have seen, so that identity resolution
has real work to do: anonymous browsing before the first purchase, a second device that logs
in later, a newsletter sign-up that carries only the email, and junk identifiers.

Pure and deterministic: one `random.Random` per customer, seeded by (seed, customer id), so a
customer's events do not depend on how many customers are generated, and messageIds are
stable, which makes loading the same data twice a no-op (the collector dedups messageIds).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from hashlib import sha256
from typing import Any

from profiles.demo import catalog
from profiles.demo.catalog import Album

SECOND_DEVICE_SHARE = 0.30
# share of customers granting each purpose on the sign-up banner
CONSENT_SHARES = {
    "analytics": 0.93,
    "personalization": 0.62,
    "marketing_email": 0.55,
    "advertising": 0.31,
}
CONSENT_POLICY = "1997-01"
EMAIL_LOOKUP_SHARE = 0.15
JUNK_SHARE = 0.05
PHONE_SHARE = 0.5
# the shop's busy hours (UTC) in which purchases are placed
OPEN_SECONDS = (8 * 3600, 23 * 3600 + 30 * 60)


@dataclass(frozen=True, slots=True)
class Purchase:
    customer_id: int
    day: date
    quantity: int
    amount: Decimal  # USD


def parse_cdnow(data: bytes | str) -> list[Purchase]:
    """CDNOW_master.txt: a header line, then whitespace-separated customer id (zero-padded),
    date YYYYMMDD, number of CDs, dollar value; CRLF line ends."""
    text = data.decode("ascii") if isinstance(data, bytes) else data
    purchases: list[Purchase] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or (number == 1 and not fields[0].isdigit()):
            continue
        try:
            customer, day, quantity, amount = fields
            purchases.append(
                Purchase(
                    customer_id=int(customer),
                    day=datetime.strptime(day, "%Y%m%d").date(),  # noqa: DTZ007 - a date
                    quantity=int(quantity),
                    amount=Decimal(amount),
                )
            )
        except (ValueError, InvalidOperation):
            raise ValueError(
                f"CDNOW line {number}: expected 'customer YYYYMMDD quantity amount', "
                f"got {line.strip()[:80]!r}"
            ) from None
    return purchases


def load_cdnow() -> list[Purchase]:
    """The full data set, read out of the lifetimes wheel (downloaded once, then cached)."""
    from cdp.datasets import dataset_bytes

    return parse_cdnow(dataset_bytes("cdnow"))


def user_id_of(customer_id: int) -> str:
    return f"cdnow-{customer_id:05d}"


def demo_batches(
    purchases: Sequence[Purchase],
    *,
    profiles: int,
    seed: int,
    now: datetime,
    batch_size: int = 500,
) -> Iterator[list[dict[str, Any]]]:
    """The events of the first `profiles` customers (by id), oldest first, in batches as an
    SDK would post them to /v1/batch."""
    if profiles < 1 or batch_size < 1:
        raise ValueError("profiles and batch_size must be at least 1")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not purchases:
        return
    now = now.astimezone(UTC)
    by_customer = _by_customer(purchases)
    # a shift by whole days keeps the real gaps between purchases; the data set's last day
    # becomes yesterday, whichever customers are chosen
    shift = (now.date() - timedelta(days=1)) - max(p.day for p in purchases)
    people = _People()
    timed: list[tuple[datetime, str, dict[str, Any]]] = []
    for customer_id in sorted(by_customer)[:profiles]:
        story = _Story(customer_id, seed=seed, shift=shift, latest=now - timedelta(minutes=5))
        story.tell(by_customer[customer_id], people)
        timed.extend((at, event["messageId"], event) for at, event in story.events)
    timed.sort(key=lambda item: (item[0], item[1]))
    for start in range(0, len(timed), batch_size):
        yield [event for _, _, event in timed[start : start + batch_size]]


def _by_customer(purchases: Iterable[Purchase]) -> dict[int, list[Purchase]]:
    grouped: dict[int, list[Purchase]] = defaultdict(list)
    for purchase in purchases:
        grouped[purchase.customer_id].append(purchase)
    for rows in grouped.values():
        rows.sort(key=lambda p: p.day)  # stable: same-day rows keep the file's order
    return grouped


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(slots=True)
class _People:
    """Keeps generated emails and phone numbers unique across customers: two customers sharing
    one would be merged into one person by identity resolution, which is not what the data
    says. Customers are generated in id order, so each one's details depend only on the
    customers before it and stay the same whatever the number generated."""

    emails: set[str] = field(default_factory=set)
    phone_lines: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def email(self, rng: random.Random, first: str, last: str) -> str:
        first_part = first.lower()
        last_part = "".join(c for c in last.lower() if c.isalpha())
        local = rng.choice(
            [
                f"{first_part}.{last_part}",
                f"{first_part[0]}{last_part}",
                f"{first_part}{last_part[0]}",
                f"{first_part}_{last_part}",
                f"{last_part}.{first_part}",
            ]
        )
        if rng.random() < 0.35:
            local += str(rng.randint(60, 99) if rng.random() < 0.7 else rng.randint(1, 999))
        domain = rng.choice(catalog.MAIL_DOMAINS)
        candidate, suffix = f"{local}@{domain}", 1
        while candidate in self.emails:
            suffix += 1
            candidate = f"{local}{suffix}@{domain}"
        self.emails.add(candidate)
        return candidate

    def phone(self, rng: random.Random, area_codes: Sequence[str]) -> str | None:
        """A 555-01xx number (reserved for fiction) in one of the city's area codes, or None
        once those are all taken."""
        free = [
            (area, line)
            for area in area_codes
            for line in range(100, 200)
            if line not in self.phone_lines[area]
        ]
        if not free:
            return None
        area, line = rng.choice(free)
        self.phone_lines[area].add(line)
        return rng.choice(catalog.PHONE_FORMATS).format(a=area, n=f"{line:04d}")


@dataclass(slots=True)
class _Device:
    anonymous_id: str
    device_id: str
    user_agent: str
    ip: str


class _Story:
    """One customer's events."""

    def __init__(self, customer_id: int, *, seed: int, shift: timedelta, latest: datetime):
        # a string seed is hashed with SHA-512 by `random`, the same in every process
        self.rng = random.Random(f"cdnow-demo:{seed}:{customer_id}")  # noqa: S311 - not secret
        self.customer_id = customer_id
        self.user_id = user_id_of(customer_id)
        self.shift = shift
        self.latest = latest
        self._id_prefix = f"cdnow-demo:{seed}:{customer_id}"
        self._count = 0
        self.events: list[tuple[datetime, dict[str, Any]]] = []

    def tell(self, purchases: list[Purchase], people: _People) -> None:
        rng = self.rng
        # every share is drawn up front, in a fixed order, so one never shifts another
        second_device = rng.random() < SECOND_DEVICE_SHARE
        email_lookup = rng.random() < EMAIL_LOOKUP_SHARE
        junk = rng.random() < JUNK_SHARE
        with_phone = rng.random() < PHONE_SHARE
        traits = self._traits(people, with_phone)

        times = self._purchase_times(purchases)
        first = times[0]
        home = self._device(mobile=rng.random() < 0.3)
        viewed = self._browse(home, before=first - timedelta(seconds=60))
        identified = first - timedelta(seconds=30)
        signed_up = {**traits, "created_at": _iso(identified)}
        self.emit(identified, home, "identify", user=True, traits=signed_up)
        self.events[-1][1]["context"]["consent"] = self._consent_banner()

        devices = [home] * len(purchases)
        if second_device:
            devices = self._second_device(times, devices, traits, home)
        for index, (purchase, at, device) in enumerate(zip(purchases, times, devices, strict=True)):
            self._order(index, purchase, at, device, viewed if index == 0 else None)
        if email_lookup:
            self._email_lookup(str(traits["email"]), after=first)
        if junk:
            self._junk(home, after=first)

    # --- the pieces of a story ----------------------------------------------------------

    def _traits(self, people: _People, with_phone: bool) -> dict[str, Any]:
        rng = self.rng
        first_name = rng.choice(catalog.FIRST_NAMES)
        last_name = rng.choice(catalog.LAST_NAMES)
        city, state, area_codes = rng.choice(catalog.CITIES)
        traits: dict[str, Any] = {
            "email": people.email(rng, first_name, last_name),
            "first_name": first_name,
            "last_name": last_name,
        }
        phone = people.phone(rng, area_codes) if with_phone else None
        if phone is not None:
            traits["phone"] = phone
        traits.update(city=city, state=state, country="US", plan=rng.choice(catalog.PLANS))
        return traits

    def _consent_banner(self) -> dict[str, Any]:
        """The choices made on the sign-up consent banner (Segment's consent convention).
        Drawn from a generator of its own so that adding it shifted no other draw."""
        rng = random.Random(f"{self._id_prefix}:consent")  # noqa: S311 - not secret
        choices = {key: rng.random() < share for key, share in CONSENT_SHARES.items()}
        return {"categoryPreferences": choices, "policyVersion": CONSENT_POLICY}

    def _purchase_times(self, purchases: list[Purchase]) -> list[datetime]:
        """A time of day for each purchase; same-day purchases get distinct, rising times."""
        rng = self.rng
        per_day: dict[date, int] = defaultdict(int)
        for purchase in purchases:
            per_day[purchase.day] += 1
        times: list[datetime] = []
        for day, count in sorted(per_day.items()):
            midnight = datetime.combine(day + self.shift, time(0), tzinfo=UTC)
            for second in sorted(rng.sample(range(*OPEN_SECONDS), count)):
                times.append(midnight + timedelta(seconds=second, milliseconds=rng.randint(0, 999)))
        return times

    def _device(self, *, mobile: bool) -> _Device:
        rng = self.rng
        agents = catalog.MOBILE_AGENTS if mobile else catalog.DESKTOP_AGENTS
        return _Device(
            anonymous_id=_uuid(rng),
            device_id=_uuid(rng),
            user_agent=rng.choice(agents),
            ip=f"{rng.choice(catalog.IP_PREFIXES)}.{rng.randint(1, 254)}",
        )

    def _browse(self, device: _Device, *, before: datetime) -> Album | None:
        """An anonymous visit ending shortly before `before`: 1-4 pages and 0-3 products
        viewed. Returns the last product viewed."""
        rng = self.rng
        steps = ["page"] * rng.randint(1, 4) + ["view"] * rng.randint(0, 3)
        rng.shuffle(steps)
        start = before - timedelta(minutes=rng.randint(5, 300))
        gap = (before - start) / len(steps)
        viewed: Album | None = None
        for index, step in enumerate(steps):
            at = start + gap * index
            if step == "page":
                name = rng.choice(catalog.BROWSE_PAGES)
                self.emit(at, device, "page", name=name, properties=self._page(name))
            else:
                viewed = rng.choice(catalog.ALBUMS)
                self.emit(at, device, "track", event="Product Viewed", properties=_product(viewed))
        return viewed

    def _second_device(
        self, times: list[datetime], devices: list[_Device], traits: dict[str, Any], home: _Device
    ) -> list[_Device]:
        """Browse anonymously on another device, then log in there. With later purchases,
        the login comes shortly before one of them, which is placed from that device, and
        about half of the purchases after it too."""
        rng = self.rng
        other = self._device(mobile=home.user_agent in catalog.DESKTOP_AGENTS)
        devices = list(devices)
        if len(times) > 1:
            switch = rng.randrange(1, len(times))
            login = times[switch] - timedelta(seconds=rng.randint(60, 3600))
            # a second device, so after the first: same-day purchases can be minutes apart
            login = max(login, times[0] + (times[switch] - times[0]) / 2)
            devices[switch] = other
            for index in range(switch + 1, len(times)):
                if rng.random() < 0.5:
                    devices[index] = other
        else:
            login = self._later(times[0], max_days=60)
        self._browse(other, before=login - timedelta(seconds=30))
        login_traits = {key: traits[key] for key in ("email", "first_name", "last_name")}
        self.emit(login, other, "identify", user=True, traits=login_traits)
        return devices

    def _order(
        self, index: int, purchase: Purchase, at: datetime, device: _Device, viewed: Album | None
    ) -> None:
        properties = {
            "order_id": f"{purchase.customer_id:05d}-{index + 1:03d}",
            "revenue": float(purchase.amount),
            "currency": "USD",
            "quantity": purchase.quantity,
            "products": self._products(purchase, viewed),
        }
        self.emit(
            at,
            device,
            "track",
            user=True,
            event="Order Completed",
            properties=properties,
            page="/checkout/complete",
        )

    def _products(self, purchase: Purchase, viewed: Album | None) -> list[dict[str, Any]]:
        """Up to three lines whose quantities add up to the real quantity and whose totals
        add up to the real amount (the data set has only the totals)."""
        rng = self.rng
        lines = max(1, min(purchase.quantity, rng.randint(1, 3)))
        albums = rng.sample([a for a in catalog.ALBUMS if a != viewed], lines)
        if viewed is not None:
            albums[0] = viewed
        quantities = [1] * lines
        for _ in range(max(purchase.quantity, 1) - lines):
            quantities[rng.randrange(lines)] += 1
        cents = int(purchase.amount * 100)
        total_quantity = sum(quantities)
        shares = [cents * q // total_quantity for q in quantities]
        shares[-1] += cents - sum(shares)
        return [
            {**_product(album), "price": round(share / q / 100, 2), "quantity": q}
            for album, q, share in zip(albums, quantities, shares, strict=True)
        ]

    def _email_lookup(self, email: str, *, after: datetime) -> None:
        """A newsletter form on yet another browser: only the email, typed differently."""
        rng = self.rng
        typed = rng.choice([email.upper(), email.title(), email[0].upper() + email[1:]])
        if typed == email or rng.random() < 0.5:
            typed = f" {typed} "
        at = self._later(after, max_days=120)
        device = self._device(mobile=rng.random() < 0.5)
        self.emit(at, device, "identify", traits={"email": typed}, page="/newsletter")

    def _junk(self, device: _Device, *, after: datetime) -> None:
        """What buggy tracking code and QA sessions send: identifiers the blocklist drops."""
        at = self._later(after, max_days=30)
        if self.rng.random() < 0.5:
            self.emit(
                at, device, "page", user_id="undefined", name="Account", properties=self._page()
            )
        else:
            self.emit(at, device, "identify", traits={"email": "test@test.com"})

    # --- helpers ------------------------------------------------------------------------

    def _later(self, after: datetime, *, max_days: int) -> datetime:
        at = after + timedelta(seconds=self.rng.randint(3600, max_days * 86400))
        # never in the future: half-way to the latest allowed time instead
        return at if at < self.latest else after + (self.latest - after) / 2

    def _page(self, name: str = "Account") -> dict[str, Any]:
        path = "/" if name == "Home" else "/" + name.lower().replace(" ", "-")
        return {"path": path, "url": catalog.SITE + path, "title": f"{name} | CDNOW"}

    def _message_id(self) -> str:
        self._count += 1
        digest = sha256(f"{self._id_prefix}:{self._count}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def emit(
        self,
        at: datetime,
        device: _Device,
        event_type: str,
        *,
        user: bool = False,
        user_id: str | None = None,
        page: str | None = None,
        **fields: Any,
    ) -> None:
        """One event as analytics.js sends it (device.id added, as mobile SDKs send it)."""
        properties = fields.get("properties", {})
        path = page or properties.get("path") or "/"
        event: dict[str, Any] = {
            "type": event_type,
            "messageId": self._message_id(),
            "anonymousId": device.anonymous_id,
        }
        if user or user_id:
            event["userId"] = self.user_id if user else user_id
        event.update(fields)
        event["context"] = {
            "library": dict(catalog.LIBRARY),
            "ip": device.ip,
            "userAgent": device.user_agent,
            "locale": "en-US",
            "page": {"path": path, "url": catalog.SITE + path},
            "device": {"id": device.device_id},
        }
        event["integrations"] = {}
        event["timestamp"] = _iso(at)
        self.events.append((at, event))


def _product(album: Album) -> dict[str, Any]:
    return {
        "product_id": album.sku,
        "sku": album.sku,
        "name": album.title,
        "brand": album.artist,
        "category": album.genre,
        "price": album.price,
    }

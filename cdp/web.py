"""The web server that `cdp_run` starts (`python -m cdp.web`): granian serving
`cdp.wsgi:application` over WSGI.

granian parses HTTP and keeps connections alive in Rust threads and calls the application in a
pool of Python threads per worker process (`--threads`): a request waiting on Postgres or Redis
holds a thread, not a process, and the collector's concurrent requests still share one INSERT
and commit per process (profiles/collector/storage.py). Measured against gunicorn's gthread
workers on the same 2-core machine, same 3 processes x 16 threads, single-event ingest alone:
1,464 / 1,474 / 1,487 requests/s at p99 50-53 ms against 939 / 1,037 / 1,070 at p99 66-79 ms
(runs alternated), 0.90 ms of the web processes' CPU per request against 1.30: gunicorn's
keep-alive poller handed each request from its main thread to a worker thread and back, two
hand-offs of the interpreter lock per request, and parsed HTTP in Python.

Its own lines (`Starting granian`, `Spawning worker-1`, a worker that died) are written in our
LOG_FORMAT (cdp/logs.py): JSON records with LOG_FORMAT=json, the text format otherwise, so the
launcher shows their errors like every other child's. The access log stays off, as before: the
collector counts requests in its metrics and logs its failures itself."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from cdp import logs

LEVELS = ("critical", "error", "warning", "warn", "info", "debug")
# well inside the launcher's STOP_TIMEOUT: a stop is graceful rather than a kill
GRACEFUL_SECONDS = 5
BACKLOG = 2048
# a worker process that dies is started again after this many seconds
RESPAWN_SECONDS = 1.0
# an idle Python thread is stopped after this long (granian's maximum; its default is 30 s):
# each thread keeps its own database connection for DB_CONN_MAX_AGE (600 s), which a stopped
# thread drops, so a burst after a quiet half-minute would open 16 new connections per process
THREAD_IDLE_SECONDS = 600


def logging_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """granian's logging (`log_dictconfig`): its loggers ("_granian", "granian.access") write
    to stderr in our format, with our context filter; granian replaces each top-level key of
    its default configuration with ours, so every key it uses is given."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": logs.filters(),
        "formatters": logs.formatters(),
        "handlers": {"console": logs.console_handler(log_format)},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["console"], "level": level, "propagate": False},
        },
    }


def parse_bind(value: str) -> tuple[str, int]:
    """ "host:port" or "[v6 address]:port"."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--bind {value!r}: expected host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cdp.web", description=__doc__.split("\n")[0])
    parser.add_argument("--bind", type=parse_bind, default=("127.0.0.1", 8000))
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--threads", type=int, default=16, help="Python threads per worker")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "INFO").lower(),
        choices=LEVELS,
    )
    return parser


def server(args: argparse.Namespace) -> Any:
    """The granian server for these arguments (not started)."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    host, port = args.bind
    return Server(
        "cdp.wsgi:application",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=args.workers,
        blocking_threads=args.threads,
        blocking_threads_idle_timeout=THREAD_IDLE_SECONDS,
        backlog=BACKLOG,
        log_level=LogLevels(args.log_level),
        log_dictconfig=logging_config(os.environ.get("LOG_FORMAT", "text"), args.log_level.upper()),
        log_access=False,
        websockets=False,
        respawn_failed_workers=True,
        respawn_interval=RESPAWN_SECONDS,
        workers_kill_timeout=GRACEFUL_SECONDS,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1 or args.threads < 1:
        parser.error("--workers and --threads must be at least 1")
    if args.log_level not in LEVELS:  # LOG_LEVEL from the environment, not checked by argparse
        parser.error(f"LOG_LEVEL={args.log_level!r}: expected one of {', '.join(LEVELS)}")
    server(args).serve()


if __name__ == "__main__":
    main()

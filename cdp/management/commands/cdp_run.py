"""`python manage.py cdp_run`: the one command that starts the whole platform.

Migrates, bootstraps a workspace (admin user, source, write key), then runs gunicorn, a Celery
worker and Celery beat as child processes. The children inherit this process's environment,
including the DATABASE_URL / REDIS_URL that settings exported when it started the embedded
Postgres / Redis, so all of them share one database and one broker. Ctrl-C (or SIGTERM) stops
the children, then the embedded services this process brought up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from cdp import runtime
from cdp.services import BootstrapResult, workspace_bootstrap

STOP_TIMEOUT = 10.0  # seconds a child gets to stop after SIGTERM before it is killed
SLOW_START_WARNING = 60.0
POLL_INTERVAL = 0.2
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEMO_DATA_COMMAND = "cdp_demo_data"
SAMPLE_EVENT = '{"userId":"user-1","event":"Signed Up","properties":{"plan":"free"}}'


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _die_with_parent() -> Callable[[], None] | None:
    """Linux only: children get SIGTERM if the launcher itself is killed (e.g. SIGKILL), so a
    crashed launcher does not leave a web server and workers running on their own."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def set_pdeathsig() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_pdeathsig


def _url_host(host: str) -> str:
    """The host to put in a URL: a wildcard bind is reached over loopback; IPv6 in brackets."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping the wildcard, not binding to it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]" if ":" in host else host


def _masked(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # like gunicorn, so a socket in TIME_WAIT from a previous run does not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own http:// URL
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (OSError, ValueError):
        return False


class Command(BaseCommand):
    help = (
        "Start the platform: migrate, bootstrap a workspace, then run the web server, a Celery "
        "worker and Celery beat until Ctrl-C. Without DATABASE_URL / REDIS_URL it uses an "
        "embedded Postgres and Redis (data under ./var or $CDP_DATA_DIR)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to bind the web server")
        parser.add_argument("--port", type=int, default=8000, help="web server port")
        parser.add_argument(
            "--workers",
            type=int,
            default=3,
            help="gunicorn worker processes (production: about 2 x cores + 1)",
        )
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
        parser.add_argument("--workspace", default="Demo", help="workspace name")
        parser.add_argument("--email", default=None, help="admin login (default: admin)")
        parser.add_argument(
            "--password", default=None, help="admin password on first run (default: random)"
        )
        parser.add_argument(
            "--demo-data", action="store_true", help="load realistic demo data before starting"
        )
        parser.add_argument(
            "--no-worker", action="store_true", help="web server only: no Celery worker or beat"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._signals = 0
        self._starting = True  # a signal now unwinds start-up; later it only asks to stop
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

        host: str = options["host"]
        port: int = options["port"]
        if _port_in_use(host, port):
            raise CommandError(f"port {port} on {host} is in use; pick another with --port")

        children: list[Child] = []
        died: Child | None = None
        try:
            self._step("Applying database migrations")
            call_command("migrate", interactive=False, verbosity=options["verbosity"])
            # static files for the web server (compressed, cache-busting names)
            call_command("collectstatic", interactive=False, verbosity=0)
            self._step(f"Preparing workspace {options['workspace']!r}")
            result = workspace_bootstrap(
                name=options["workspace"], email=options["email"], password=options["password"]
            )
            if options["demo_data"]:
                self._load_demo_data(options["workspace"])
            # the children open their own connections; ours would only hold the database open
            connections.close_all()

            self._step(
                "Starting " + ("web server" if options["no_worker"] else "web, worker, beat")
            )
            self._starting = False
            self._start_children(options, children)
            died = self._supervise(children, host, port, result)
        except KeyboardInterrupt:
            self.stderr.write("\nInterrupted before start-up finished.")
        finally:
            self._starting = False
            if children:
                self._step("Stopping")
                self._stop_children(children)
            connections.close_all()
            # no-ops unless this process brought the embedded services up (no URL configured)
            try:
                runtime.stop_embedded_redis()
            finally:
                runtime.stop_embedded_database()
        if died is not None:
            code = died.process.returncode
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
            raise CommandError(
                f"{died.name} {how} unexpectedly; stopped everything else. "
                "Its log lines above say why."
            )
        self.stdout.write("Stopped.")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._starting:
            # still migrating / bootstrapping: unwind now; finally stops what was started
            raise KeyboardInterrupt

    def _step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {text}"))
        self.stdout.flush()

    def _load_demo_data(self, workspace: str) -> None:
        if DEMO_DATA_COMMAND not in get_commands():
            self.stdout.write("Demo data arrives with a later release; starting without it.")
            return
        self._step("Loading demo data")
        command = load_command_class(get_commands()[DEMO_DATA_COMMAND], DEMO_DATA_COMMAND)
        parser = command.create_parser("manage.py", DEMO_DATA_COMMAND)
        accepts_workspace = any(action.dest == "workspace" for action in parser._actions)
        call_command(command, **({"workspace": workspace} if accepts_workspace else {}))

    def _start_children(self, options: dict[str, Any], children: list[Child]) -> None:
        """Appends to `children` as it goes, so a failure halfway still stops those started."""
        python = [sys.executable, "-m"]
        host, port = options["host"], options["port"]
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        commands = {
            "web server (gunicorn)": [
                *python,
                "gunicorn",
                "cdp.wsgi:application",
                "--bind",
                bind,
                "--workers",
                str(options["workers"]),
                # well inside our STOP_TIMEOUT, so a stop is graceful rather than a kill
                "--graceful-timeout",
                "5",
                # gunicorn's control socket has one default path per user: two servers clash
                "--no-control-socket",
            ],
        }
        if not options["no_worker"]:
            runtime.DATA_DIR.mkdir(parents=True, exist_ok=True)
            commands["Celery worker"] = [
                *python,
                "celery",
                "-A",
                "cdp.celery:app",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(options["concurrency"]),
                "--hostname",
                f"cdp-{os.getpid()}@%h",
                # one local worker: no need to sync with or gossip to others (faster start)
                "--without-mingle",
                "--without-gossip",
            ]
            commands["Celery beat"] = [
                *python,
                "celery",
                "-A",
                "cdp.celery:app",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(runtime.DATA_DIR / "celerybeat-schedule"),
            ]
        # inherits DATABASE_URL / REDIS_URL, exported by settings for the embedded services
        env = {
            "CDP_LOG_DIR": str(runtime.DATA_DIR / "log"),  # errors.log: see the banner
            **os.environ,
            "PYTHONUNBUFFERED": "1",
        }
        preexec = _die_with_parent()
        sys.stdout.flush()
        sys.stderr.flush()
        for name, argv in commands.items():
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                # own process group: Ctrl-C reaches only us, and we stop the children in order;
                # a group can also be killed whole (gunicorn's and Celery's pool processes)
                process_group=0,
                preexec_fn=preexec,
            )
            children.append(Child(name=name, process=process))

    def _supervise(
        self, children: list[Child], host: str, port: int, result: BootstrapResult
    ) -> Child | None:
        """Wait for a stop signal; return the child that died if one does first. Prints the
        banner once the web server answers."""
        base_url = f"http://{_url_host(host)}:{port}"
        started = time.monotonic()
        ready = warned = False
        next_probe = 0.0
        while not self._signals:
            for child in children:
                if child.process.poll() is not None:
                    return child
            now = time.monotonic()
            if not ready and now >= next_probe:
                ready = _answers(f"{base_url}/login/")
                if ready:
                    self._print_banner(base_url, host, result)
                elif not warned and now - started > SLOW_START_WARNING:
                    warned = True
                    self.stderr.write(f"The web server has not answered {base_url} yet...")
                next_probe = now + 0.5
            time.sleep(POLL_INTERVAL)
        return None

    def _stop_children(self, children: list[Child]) -> None:
        """SIGTERM (graceful stop), wait up to STOP_TIMEOUT, then kill each process group. A
        second Ctrl-C skips the wait."""
        signals_at_start = self._signals
        for child in children:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and self._signals == signals_at_start:
            if all(child.process.poll() is not None for child in children):
                break
            time.sleep(POLL_INTERVAL)
        for child in children:
            if child.process.poll() is None:
                self.stderr.write(f"{child.name} did not stop in time; killing it.")
            # also reaps pool processes a dead master may have left behind in its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()

    def _print_banner(self, base_url: str, host: str, result: BootstrapResult) -> None:
        password = result.password or "(unchanged since first run)"
        curl = (
            f"curl -sS -u {shlex.quote(result.write_key + ':')} "
            "-H 'Content-Type: application/json' \\\n"
            f"       -d {shlex.quote(SAMPLE_EVENT)} \\\n"
            f"       {base_url}/v1/track"
        )
        database = "embedded PostgreSQL" if runtime._pg_server is not None else "PostgreSQL"
        log_dir = os.environ.get("CDP_LOG_DIR") or runtime.DATA_DIR / "log"
        broker = "embedded Redis" if runtime._redis is not None else "Redis"
        rule = "=" * 78
        lines = [
            rule,
            "CDP is running.",
            "",
            f"  Log in        {base_url}/login/",
            f"  Username      {result.username}",
            f"  Password      {password}",
            f"  Workspace     {result.workspace.name}",
            f"  Write key     {result.write_key}",
            (
                f"  API token     {result.api_token}   (header  Authorization: Token <token>)"
                if result.api_token
                else "  API token     (shown when it was made; make another under Settings)"
            ),
            f"  API docs      {base_url}/api/docs/",
            f"  Database      {database}  {_masked(settings.DATABASE_URL)}",
            f"  Broker        {broker}  {_masked(settings.CELERY_BROKER_URL)}",
            f"  Error log     {log_dir}/errors.log",
            "",
            "  Send a test event:",
            f"    {curl}",
            "",
        ]
        if host not in LOOPBACK and "*" not in settings.ALLOWED_HOSTS:
            lines += [
                "  Note: to reach it from other machines, add the name or address they use",
                "  to ALLOWED_HOSTS (comma-separated environment variable).",
                "",
            ]
        lines += ["Press Ctrl-C to stop.", rule]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

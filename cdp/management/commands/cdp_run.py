"""`python manage.py cdp_run`: the one command that starts the platform, whole or one role.

`--role all` (the default) migrates, bootstraps a workspace (admin user, source, write key),
then runs the web server (granian, cdp/web.py), a Celery worker and Celery beat as child
processes. The children inherit this process's environment, including the DATABASE_URL /
REDIS_URL that settings exported when it started the embedded Postgres / Redis, so all of them
share one database and one broker. Ctrl-C (or SIGTERM) stops the children, then the embedded
services this process brought up.

With `--role all` the children write their output to log files in the data folder, and the
terminal shows a status line, error lines and, last, the credentials (cdp/launcher.py);
`--info` prints the status and credentials of the instance running on this data folder.

`--role web|worker|beat` runs one part of a deployment spread over machines (README
"Scale-out"): only that child, against the Postgres and broker named in the environment
(embedded services cannot be shared between machines, so they are refused). Its output goes
to the launcher's own stdout, for the process manager that runs it to collect. Only `all`
and `--migrate` run migrations: N web servers starting at once must not all migrate.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import shutil
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
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from cdp import launcher, queues, runtime
from cdp.models import ApiToken
from cdp.services import BootstrapResult, workspace_bootstrap

STOP_TIMEOUT = 10.0  # seconds a child gets to stop after SIGTERM before it is killed
SLOW_START_WARNING = 60.0
# the credentials are printed once every child serves, or after this long whatever they do
READY_TIMEOUT = 90.0
POLL_INTERVAL = 0.2
STATUS_REFRESH = 1.0  # seconds between redraws of the status line on a terminal
RATE_INTERVAL = 15.0  # seconds between two counts of the events received in the last minute
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEMO_DATA_COMMAND = "cdp_demo_data"
# then the models trained on it (an app above this one provides it)
DEMO_MODELS_COMMAND = "cdp_demo_models"
# then the personalisation on top of them (placements, offers, an experiment)
DEMO_DECISIONS_COMMAND = "cdp_demo_decisions"
SAMPLE_EVENT = '{"userId":"user-1","event":"Signed Up","properties":{"plan":"free"}}'
ROLES = ("all", "web", "worker", "beat")
# advisory lock held while migrating: launchers started at once on several machines migrate
# one after the other (7301: identity, 7302: drain slots, 7303: segment evaluation)
MIGRATION_LOCK = (7300, 0)
# the roles each option is for; given with another role it is a mistake, not a no-op
OPTION_ROLES: dict[str, tuple[str, ...]] = {
    "host": ("all", "web"),
    "port": ("all", "web"),
    "workers": ("all", "web"),
    "threads": ("all", "web"),
    "concurrency": ("all", "worker"),
    "queues": ("all", "worker"),
    "workspace": ("all",),
    "email": ("all",),
    "password": ("all",),
    "demo_data": ("all",),
    "no_worker": ("all",),
}
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8000,
    "workers": 3,
    "threads": 16,
    "concurrency": 2,
    "workspace": "Demo",
}


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    key: str = ""  # web, worker, activation, beat
    log: Path | None = None  # where its output goes (None: the launcher's own stdout)
    log_offset: int = 0  # the log's size when the child started


@dataclass(frozen=True)
class ChildSpec:
    key: str
    name: str
    argv: list[str]


@dataclass(frozen=True)
class Plan:
    """What one launcher runs, from its options (validated by `plan_for`)."""

    role: str
    web: bool
    worker: bool
    beat: bool
    migrate: bool
    bootstrap: bool
    queues: tuple[str, ...]  # names from cdp.queues.QUEUES
    host: str
    port: int
    workers: int
    threads: int
    concurrency: int


def plan_for(options: dict[str, Any], *, embedded_database: bool, embedded_broker: bool) -> Plan:
    """The launcher's options checked against its role; a CommandError says what is wrong."""
    role = options.get("role") or "all"
    if role not in ROLES:
        raise CommandError(f"--role {role}: expected one of {', '.join(ROLES)}")
    for option, roles in OPTION_ROLES.items():
        if options.get(option) not in (None, False) and role not in roles:
            flag = "--" + option.replace("_", "-")
            raise CommandError(
                f"{flag} does not apply to --role {role} (only to {', '.join(roles)})"
            )
    if role != "all" and (embedded_database or embedded_broker):
        unset = ["DATABASE_URL"] if embedded_database else []
        unset += ["REDIS_URL (or CELERY_BROKER_URL)"] if embedded_broker else []
        raise CommandError(
            f"--role {role} runs one part of a deployment spread over machines: set "
            "DATABASE_URL and REDIS_URL (or CELERY_BROKER_URL) to the Postgres and broker that "
            f"every machine shares (not set: {' and '.join(unset)}). The embedded services "
            "serve one machine: run everything there with --role all (the default)."
        )
    values = {
        key: default if options.get(key) is None else options[key]
        for key, default in DEFAULTS.items()
    }
    for key in ("workers", "threads", "concurrency", "port"):
        if values[key] < 1:
            raise CommandError(f"--{key} {values[key]}: expected a positive number")
    no_worker = bool(options.get("no_worker"))
    if no_worker and options.get("queues") is not None:
        raise CommandError("--queues: there is no worker with --no-worker")
    try:
        consumed = (
            queues.parse_queues(options["queues"])
            if options.get("queues") is not None
            else list(queues.QUEUES)
        )
    except ValueError as error:
        raise CommandError(f"--queues: {error}") from None
    return Plan(
        role=role,
        web=role in ("all", "web"),
        worker=role == "worker" or (role == "all" and not no_worker),
        beat=role == "beat" or (role == "all" and not no_worker),
        migrate=role == "all" or bool(options.get("migrate")),
        bootstrap=role == "all",
        queues=tuple(consumed),
        host=values["host"],
        port=values["port"],
        workers=values["workers"],
        threads=values["threads"],
        concurrency=values["concurrency"],
    )


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
        # like the web server, so a socket in TIME_WAIT from a previous run does not count
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
        "Start the platform. --role all (the default): migrate, bootstrap a workspace, then "
        "run the web server, a Celery worker and Celery beat until Ctrl-C; without "
        "DATABASE_URL / REDIS_URL it uses an embedded Postgres and Redis (data under ./var or "
        "$CDP_DATA_DIR); the processes log to files in its log folder, and the terminal keeps "
        "a status line, errors and, last, the credentials (--info prints them again). "
        "--role web|worker|beat: one part of a deployment over several "
        "machines, against the Postgres and broker in DATABASE_URL and REDIS_URL (README "
        '"Scale-out").'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--role",
            choices=ROLES,
            default="all",
            help="what to run: all (default: web, worker and beat on this machine), web "
            "(granian), worker (Celery worker) or beat (Celery beat: exactly one per "
            "deployment); a role other than all needs DATABASE_URL and REDIS_URL",
        )
        parser.add_argument(
            "--migrate",
            action="store_true",
            help="apply database migrations before starting (--role all always does); "
            "safe on several machines at once: they take turns",
        )
        parser.add_argument(
            "--queues",
            default=None,
            help=f"worker: comma-separated queues to consume, of {', '.join(queues.QUEUES)} "
            "(default: all of them)",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help=f"worker: Celery worker processes (default {DEFAULTS['concurrency']})",
        )
        parser.add_argument(
            "--host",
            default=None,
            help=f"web: address to bind the web server (default {DEFAULTS['host']})",
        )
        parser.add_argument(
            "--port", type=int, default=None, help=f"web: port (default {DEFAULTS['port']})"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help=f"web: web server worker processes (default {DEFAULTS['workers']}; production: "
            "cores + 1)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help=f"web: Python threads per web server worker (default {DEFAULTS['threads']}); each "
            "keeps its own database connection once it has used one",
        )
        parser.add_argument(
            "--workspace",
            default=None,
            help=f"all: workspace to prepare (default {DEFAULTS['workspace']})",
        )
        parser.add_argument("--email", default=None, help="all: admin login (default: admin)")
        parser.add_argument(
            "--password", default=None, help="all: admin password on first run (default: random)"
        )
        parser.add_argument(
            "--demo-data", action="store_true", help="all: load realistic demo data before starting"
        )
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="all: web server only, no Celery worker or beat",
        )
        parser.add_argument(
            "--info",
            action="store_true",
            help="print the status, log folder and credentials of the instance running on "
            "this data folder, and exit (starts nothing; bin/start --info does not even "
            "start the embedded database to ask)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["info"]:
            self.stdout.flush()
            code = launcher.info(self.stdout)
            if code:
                raise SystemExit(code)
            return
        self._signals = 0
        self._status_shown = ""  # the status line on the screen (a terminal) or last printed
        self._wrote_state = False
        self._state_written: tuple[dict[str, str], int | None] | None = None
        self._started_at = launcher.now_iso()
        self._tty = self.stdout.isatty()
        self._starting = True  # a signal now unwinds start-up; later it only asks to stop
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

        children: list[Child] = []
        died: Child | None = None
        try:
            plan = plan_for(
                options,
                embedded_database=runtime._pg_server is not None,
                embedded_broker=runtime._redis is not None,
            )
            if plan.web and _port_in_use(plan.host, plan.port):
                raise CommandError(
                    f"port {plan.port} on {plan.host} is in use; pick another with --port"
                )
            if plan.migrate:
                self._migrate(options["verbosity"])
            if plan.web:
                # static files for the web server (compressed, cache-busting names), on the
                # machine that serves them
                call_command("collectstatic", interactive=False, verbosity=0)
            result: BootstrapResult | None = None
            if plan.bootstrap:
                workspace = options["workspace"] or DEFAULTS["workspace"]
                self._step(f"Preparing workspace {workspace!r}")
                result = workspace_bootstrap(
                    name=workspace, email=options["email"], password=options["password"]
                )
                if options["demo_data"]:
                    self._load_demo_data(workspace)
                self._shown_secrets = self._secrets(result)
            # the children open their own connections; ours would only hold the database open
            connections.close_all()

            self._step("Starting " + ", ".join(spec.name for spec in self._commands(plan)))
            if plan.role == "all":
                self.stdout.write(f"    their logs: {launcher.log_dir()}")
            self._starting = False
            self._start_children(plan, children)
            died = self._supervise(children, plan, result)
        except KeyboardInterrupt:
            self._clear_status()
            self.stderr.write("\nInterrupted before start-up finished.")
        finally:
            self._starting = False
            self._clear_status()
            if self._wrote_state:
                launcher.remove(launcher.state_path())
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
            why = (
                f"The end of its log, {died.log}, is above."
                if died.log
                else "Its log lines above say why."
            )
            raise CommandError(f"{died.name} {how} unexpectedly; stopped everything else. {why}")
        self.stdout.write("Stopped.")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._starting:
            # still migrating / bootstrapping: unwind now; finally stops what was started
            raise KeyboardInterrupt

    def _step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {text}"))
        self.stdout.flush()

    def _migrate(self, verbosity: int) -> None:
        """Migrations under a session advisory lock: a second launcher waits, then finds
        nothing left to apply (Django's migrate alone would race on the same tables)."""
        self._step("Applying database migrations")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", MIGRATION_LOCK)
            taken = bool(cursor.fetchone()[0])  # type: ignore[index]
            if not taken:
                self.stdout.write("Another launcher is migrating; waiting for it.")
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATION_LOCK)
        try:
            call_command("migrate", interactive=False, verbosity=verbosity)
        finally:
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATION_LOCK)

    def _load_demo_data(self, workspace: str) -> None:
        if DEMO_DATA_COMMAND not in get_commands():
            self.stdout.write("Demo data arrives with a later release; starting without it.")
            return
        self._step("Loading demo data")
        command = load_command_class(get_commands()[DEMO_DATA_COMMAND], DEMO_DATA_COMMAND)
        parser = command.create_parser("manage.py", DEMO_DATA_COMMAND)
        accepts_workspace = any(action.dest == "workspace" for action in parser._actions)
        call_command(command, **({"workspace": workspace} if accepts_workspace else {}))
        if DEMO_MODELS_COMMAND in get_commands():
            self._step("Training the demo models")
            call_command(DEMO_MODELS_COMMAND, workspace=workspace)
        if DEMO_DECISIONS_COMMAND in get_commands():
            self._step("Setting up personalisation")
            call_command(DEMO_DECISIONS_COMMAND, workspace=workspace)

    def _commands(self, plan: Plan) -> list[ChildSpec]:
        """The children of this plan: short key (its log's name), display name and argv."""
        python = [sys.executable, "-m"]
        commands: dict[str, list[str]] = {}
        keys: dict[str, str] = {}
        if plan.web:
            host, port = plan.host, plan.port
            bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            keys["web server (granian)"] = "web"
            # granian parses HTTP in Rust and runs the application in a pool of Python threads
            # per process: a request waiting on Postgres or Redis holds a thread, not a
            # process; the collector's concurrent requests share one INSERT and commit
            # (profiles/collector/storage.py); SDKs keep their connections alive (cdp/web.py)
            commands["web server (granian)"] = [
                *python,
                "cdp.web",
                "--bind",
                bind,
                "--workers",
                str(plan.workers),
                "--threads",
                str(plan.threads),
            ]
        # deliveries wait on other servers (HTTP, AMQP, S3): the activation queue gets its own
        # worker with a pool of threads, so a slow destination holds a thread, not a process,
        # and never the ingest or default queues
        threaded = [q for q in plan.queues if q == queues.ACTIVATION]
        pooled = [q for q in plan.queues if q != queues.ACTIVATION]
        if plan.worker and threaded:
            node = "cdp-activation"
            keys["Celery worker (activation, threads)"] = "activation"
            commands["Celery worker (activation, threads)"] = [
                *python,
                "celery",
                "-A",
                "cdp.celery:app",
                "worker",
                "--queues",
                _broker_queue(queues.ACTIVATION),
                "--loglevel",
                "INFO",
                "--pool",
                "threads",
                "--concurrency",
                str(settings.CDP_ACTIVATION_THREADS),
                "--hostname",
                f"{node}-{os.getpid()}@%h",
                "--without-mingle",
                "--without-gossip",
            ]
        if plan.worker and pooled:
            node = "cdp" if plan.role == "all" else "cdp-" + "-".join(pooled)
            keys[f"Celery worker ({', '.join(pooled)})"] = "worker"
            commands[f"Celery worker ({', '.join(pooled)})"] = [
                *python,
                "celery",
                "-A",
                "cdp.celery:app",
                "worker",
                "--queues",
                ",".join(_broker_queue(queue) for queue in pooled),
                "--loglevel",
                "INFO",
                "--concurrency",
                str(plan.concurrency),
                # unique per machine and launcher: workers of one queue are told apart
                "--hostname",
                f"{node}-{os.getpid()}@%h",
                # workers share nothing but the broker and Postgres (claims, leases): no need
                # to sync with or gossip to each other (faster start, less broker traffic)
                "--without-mingle",
                "--without-gossip",
            ]
        if plan.beat:
            keys["Celery beat"] = "beat"
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
        return [ChildSpec(keys[name], name, argv) for name, argv in commands.items()]

    def _start_children(self, plan: Plan, children: list[Child]) -> None:
        """Appends to `children` as it goes, so a failure halfway still stops those started.
        With --role all each child writes to its own log file; the other roles' output goes
        to ours, for the process manager that runs them."""
        specs = self._commands(plan)
        runtime.DATA_DIR.mkdir(parents=True, exist_ok=True)
        logs = launcher.log_dir()
        # inherits DATABASE_URL / REDIS_URL, exported by settings for the embedded services
        env = {
            "CDP_LOG_DIR": str(logs),  # errors.log: see the banner
            **os.environ,
            "PYTHONUNBUFFERED": "1",
        }
        if plan.web:
            # the web server's workers share their metrics through files (cdp/metrics.py);
            # emptied at each start
            metrics_dir = launcher.metrics_dir()
            launcher.reset_metrics_dir(metrics_dir)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        preexec = _die_with_parent()
        sys.stdout.flush()
        sys.stderr.flush()
        for spec in specs:
            log = logs / f"{spec.key}.log" if plan.role == "all" else None
            output = launcher.open_log(log) if log else None
            offset = output.tell() if output else 0
            try:
                process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    spec.argv,
                    cwd=settings.BASE_DIR,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT if output else None,
                    # own process group: Ctrl-C reaches only us, and we stop the children in
                    # order; a group can also be killed whole (the web server's and Celery's)
                    process_group=0,
                    preexec_fn=preexec,
                )
            finally:
                if output:
                    output.close()  # the child has its own copy
            children.append(
                Child(name=spec.name, process=process, key=spec.key, log=log, log_offset=offset)
            )

    def _supervise(
        self, children: list[Child], plan: Plan, result: BootstrapResult | None
    ) -> Child | None:
        """Wait for a stop signal; return the child that died if one does first. Prints the
        banner once the web server answers (at once when there is none); with --role all,
        once every child serves, and keeps the status line and the children's errors on
        the terminal meanwhile."""
        base_url = f"http://{_url_host(plan.host)}:{plan.port}"
        if plan.role != "all":
            return self._supervise_role(children, plan, base_url)
        watched = [
            launcher.Watched(
                key=c.key,
                label=c.name,
                log=c.log,
                pid=c.process.pid,
                # from where the log ended when the child started: earlier runs' lines are
                # not this run's errors
                tail=launcher.LogTail(c.log, offset=c.log_offset),
            )
            for c in children
            if c.log is not None
        ]
        started = time.monotonic()
        shown = False  # the banner
        web_ready = not plan.web
        warned = False
        next_probe = next_redraw = next_rate = 0.0
        rate: int | None = None
        unicode = launcher.can_print("✓…✗·│", sys.stdout)
        printed_states: dict[str, str] = {}  # in the last status line printed (not a terminal)
        while not self._signals:
            now = time.monotonic()
            for child, w in zip(children, watched, strict=True):
                self._read_log(w)
                if child.process.poll() is not None:
                    w.dead = True
                    self._print_above_status(
                        [f"{w.key} │ {line}" for line in launcher.last_lines(w.log)],
                        stream=self.stderr,
                    )
                    if shown:
                        self._write_state(plan, base_url, children, watched, rate)
                    return child
            if not web_ready and now >= next_probe:
                web_ready = _answers(f"{base_url}/login/")
                next_probe = now + 0.5
                if not web_ready and not warned and now - started > SLOW_START_WARNING:
                    warned = True
                    self._print_above_status(
                        [f"The web server has not answered {base_url} yet... (see web.log)"],
                        stream=self.stderr,
                    )
            for w in watched:
                if w.key == "web":
                    w.ready = web_ready
            states = {w.key: w.state for w in sorted(watched, key=lambda w: _key_order(w.key))}
            if shown and now >= next_rate:
                rate = self._events_per_minute()
                next_rate = now + RATE_INTERVAL
            if not shown and (all(w.ready for w in watched) or now - started > READY_TIMEOUT):
                shown = True
                rate = self._events_per_minute()
                next_rate = now + RATE_INTERVAL
                status = launcher.status_text(states, rate, launcher.log_dir(), unicode=unicode)
                self._print_banner(plan, base_url, result, status=status)
                printed_states = states
            status = launcher.status_text(states, rate, launcher.log_dir(), unicode=unicode)
            if self._tty and now >= next_redraw:
                self._draw_status(status)
                next_redraw = now + STATUS_REFRESH
            elif not self._tty and shown and states != printed_states:
                # a pipe or a file: a line only when a process changed state (not for every
                # new events/min figure, which would scroll the credentials away again)
                self.stdout.write(status)
                self.stdout.flush()
                printed_states = states
            if shown and (states, rate) != self._state_written:
                self._write_state(plan, base_url, children, watched, rate)
            time.sleep(POLL_INTERVAL)
        return None

    def _supervise_role(self, children: list[Child], plan: Plan, base_url: str) -> Child | None:
        started = time.monotonic()
        ready = warned = False
        next_probe = 0.0
        while not self._signals:
            for child in children:
                if child.process.poll() is not None:
                    return child
            now = time.monotonic()
            if not ready and now >= next_probe:
                ready = not plan.web or _answers(f"{base_url}/login/")
                if ready:
                    self._print_banner(plan, base_url, None)
                elif not warned and now - started > SLOW_START_WARNING:
                    warned = True
                    self.stderr.write(f"The web server has not answered {base_url} yet...")
                next_probe = now + 0.5
            time.sleep(POLL_INTERVAL)
        return None

    def _read_log(self, watched: launcher.Watched) -> None:
        """New lines of a child's log: whether it serves yet, and its errors (to the
        terminal)."""
        lines = watched.tail.lines()
        ready_line = launcher.READY_LINE.get(watched.key)
        if ready_line is not None and not watched.ready:
            watched.ready = any(ready_line.search(launcher.message_of(line)) for line in lines)
        errors = launcher.error_lines(watched, lines, time.monotonic())
        if errors:
            self._print_above_status(errors, stream=self.stderr)

    def _events_per_minute(self) -> int | None:
        """Events received in the last minute, all workspaces: a count over today's partition
        of the events, on a connection closed again at once (None when it cannot be had).
        The events belong to an app above this one: it is asked for by name, like the demo
        data command."""
        if not apps.is_installed("profiles"):
            return None
        event = apps.get_model("profiles", "Event")
        since = timezone.now() - timedelta(minutes=1)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL statement_timeout = '2s'")
                return int(event.objects.filter(received_at__gt=since).count())
        except DatabaseError:
            return None
        finally:
            connections.close_all()

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

    def _print_banner(
        self,
        plan: Plan,
        base_url: str,
        result: BootstrapResult | None,
        *,
        status: str | None = None,
    ) -> None:
        """What runs where, then (--role all) the credentials: the last block printed, so
        they stay on the screen."""
        database = "embedded PostgreSQL" if runtime._pg_server is not None else "PostgreSQL"
        log_dir = launcher.log_dir()
        broker = "embedded Redis" if runtime._redis is not None else "Redis"
        rule = "=" * 78
        if result is not None:
            head = [rule, f"CDP is running: {status}" if status else "CDP is running.", ""]
        else:
            head = [rule, f"CDP {plan.role} is running.", ""]
        lines: list[str] = []
        if result is None and plan.web:
            lines += [
                f"  Web server    {base_url}/  (workers: {plan.workers} x {plan.threads} threads)",
                f"  API docs      {base_url}/api/docs/",
            ]
        if plan.worker:
            lines.append(
                "  Queues        "
                + ", ".join(
                    queue if _broker_queue(queue) == queue else f"{queue} ({_broker_queue(queue)})"
                    for queue in plan.queues
                )
                + f"  (processes: {plan.concurrency})"
            )
        lines += [
            f"  Database      {database}  {_masked(settings.DATABASE_URL)}",
            f"  Broker        {broker}  {_masked(settings.CELERY_BROKER_URL)}",
        ]
        if plan.role == "all":
            names = ", ".join(f"{key}.log" for key in self._log_keys(plan))
            lines += [
                f"  Logs          {log_dir}",
                f"                {names}; errors.log: every error, with its traceback",
            ]
        else:
            lines.append(f"  Error log     {log_dir}/errors.log")
        lines.append("")
        if plan.web and plan.host not in LOOPBACK and "*" not in settings.ALLOWED_HOSTS:
            lines += [
                "  Note: to reach it from other machines, add the name or address they use",
                "  to ALLOWED_HOSTS (comma-separated environment variable).",
                "",
            ]
        if result is not None:
            lines += self._credential_lines(base_url, result)
            self._banner = lines  # for --info
        foot = [
            "Press Ctrl-C to stop."
            + ("  `bin/start --info` prints this again." if result is not None else ""),
            rule,
        ]
        self._clear_status()
        self.stdout.write("\n".join(head + lines + foot))
        self.stdout.flush()

    def _log_keys(self, plan: Plan) -> list[str]:
        return sorted((spec.key for spec in self._commands(plan)), key=_key_order)

    def _credential_lines(self, base_url: str, result: BootstrapResult) -> list[str]:
        password, api_token = self._shown_secrets
        curl = (
            f"curl -sS -u {shlex.quote(result.write_key + ':')} "
            "-H 'Content-Type: application/json' \\\n"
            f"       -d {shlex.quote(SAMPLE_EVENT)} \\\n"
            f"       {base_url}/v1/track"
        )
        return [
            f"  Log in        {base_url}/login/",
            f"  Username      {result.username}",
            f"  Password      {password}",
            f"  Workspace     {result.workspace.name}",
            f"  Write key     {result.write_key}",
            (
                f"  API token     {api_token}   (header  Authorization: Token <token>)"
                if api_token
                else "  API token     (shown when it was made; make another under Settings)"
            ),
            f"  API docs      {base_url}/api/docs/",
            "",
            "  Send a test event:",
            f"    {curl}",
            "",
        ]

    def _secrets(self, result: BootstrapResult) -> tuple[str, str | None]:
        """The admin password and API token to show. Made now: shown, and kept in the data
        folder's credentials file (0600) for later starts. Made by an earlier start: shown
        again only if that file has them for this database and they still work (a password
        changed since, or another database, is never shown)."""
        path = launcher.credentials_path()
        kept = launcher.read_private(path) or {}
        key = f"{_masked(settings.DATABASE_URL)}|{result.workspace.name}|{result.username}"
        entry = dict(kept.get(key) or {})
        if result.password:
            entry["password"] = result.password
        if result.api_token:
            entry["api_token"] = result.api_token
        user = get_user_model().objects.filter(username=result.username).first()
        password = entry.get("password")
        if password and (user is None or not user.check_password(password)):
            del entry["password"]  # changed since: forget it
            password = None
        token = entry.get("api_token")
        if token and not (
            ApiToken.matching(token)
            .filter(workspace=result.workspace, user=user, revoked_at__isnull=True)
            .exists()
        ):
            entry.pop("api_token")
            token = None
        if entry != kept.get(key):
            if entry:
                kept[key] = entry
            else:
                kept.pop(key, None)
            launcher.write_private(path, kept)
        return (
            password or "(set on the first run; change it with manage.py changepassword)",
            token,
        )

    # ---- the terminal (--role all) -------------------------------------------------------

    def _draw_status(self, status: str) -> None:
        """The status line, redrawn in place (a terminal only), cut to its width: a line
        that wraps could not be redrawn."""
        width = shutil.get_terminal_size((100, 24)).columns - 1
        text = status if len(status) <= width else status[: max(width - 1, 0)] + "…"
        self.stdout.write(f"\r\x1b[2K{text}", ending="")
        self.stdout.flush()
        self._status_shown = text

    def _clear_status(self) -> None:
        if getattr(self, "_tty", False) and getattr(self, "_status_shown", ""):
            self.stdout.write("\r\x1b[2K", ending="")
            self.stdout.flush()
            self._status_shown = ""

    def _print_above_status(self, lines: list[str], stream: Any = None) -> None:
        """Lines for the terminal, above the status line (which the next tick redraws)."""
        if not lines:
            return
        self._clear_status()
        out = stream or self.stdout
        for line in lines:
            out.write(line)
        out.flush()

    def _write_state(
        self,
        plan: Plan,
        base_url: str,
        children: list[Child],
        watched: list[launcher.Watched],
        rate: int | None,
    ) -> None:
        """What `--info` prints, in the data folder (0600: it holds the credentials)."""
        states = {w.key: w.state for w in sorted(watched, key=lambda w: _key_order(w.key))}
        launcher.write_private(
            launcher.state_path(),
            {
                "pid": os.getpid(),
                "started_at": self._started_at,
                "role": plan.role,
                "base_url": base_url,
                "log_dir": str(launcher.log_dir()),
                "children": [
                    {"key": c.key, "name": c.name, "pid": c.process.pid, "log": str(c.log)}
                    for c in children
                ],
                "status": {
                    "states": states,
                    "events_per_minute": rate,
                    "updated_at": launcher.now_iso(),
                },
                "banner": getattr(self, "_banner", []),
            },
        )
        self._wrote_state = True
        self._state_written = (states, rate)


def _key_order(key: str) -> int:
    """web, worker, activation, beat: the order of the status line and the log names."""
    order = ("web", "worker", "activation", "beat")
    return order.index(key) if key in order else len(order)


def _broker_queue(queue: str) -> str:
    return queues.broker_queue(
        queue, prefix=settings.CDP_QUEUE_PREFIX, default_queue=settings.CELERY_TASK_DEFAULT_QUEUE
    )

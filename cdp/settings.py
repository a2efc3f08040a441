"""Settings, all read from the environment (see README "Configuration")."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from cdp import logs, queues, runtime
from cdp.env import ImproperlyConfiguredEnv, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("CDP_REQUIRE_SECRET_KEY", default=False):
        raise RuntimeError("SECRET_KEY must be set in production (CDP_REQUIRE_SECRET_KEY=1)")
    SECRET_KEY = "insecure-dev-only-key-set-SECRET_KEY-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS mode (CDP_HTTPS=1, behind a TLS-terminating proxy that sets X-Forwarded-Proto):
#     secure cookies, HSTS, the SSL redirect; `manage.py check --deploy` is then clean. -------
HTTPS = env_bool("CDP_HTTPS", default=False)
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("CDP_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes may speak plain HTTP
    SECURE_HSTS_SECONDS = env_int("CDP_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CDP_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("CDP_HSTS_PRELOAD", default=True)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy on every response: no inline script or style, nothing from
#     elsewhere, never framed (django-csp) --------------------------------------------------
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "csp",
    "axes",
    "cdp",
    "profiles",
    "consent",  # before segments: its merge/split hooks must run first
    "segments",
    "activation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "cdp.middleware.JsonErrorsForApiPaths",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-csp's, with the policy of a plain response built once
    "cdp.middleware.ContentSecurityPolicy",
    # last: it answers a locked-out login attempt with the lockout page (django-axes)
    "axes.middleware.AxesMiddleware",
    "cdp.middleware.RejectNulInParameters",
]

ROOT_URLCONF = "cdp.urls"
WSGI_APPLICATION = "cdp.wsgi.application"
ASGI_APPLICATION = "cdp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cdp.context.workspace",
            ],
        },
    },
]

# --- Database: DATABASE_URL, else the embedded Postgres ---------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
if not DATABASE_URL:
    DATABASE_URL = runtime.embedded_database_url()
    os.environ["DATABASE_URL"] = DATABASE_URL
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
        # a persistent connection is checked (one round trip) before a request reuses it, so
        # a restarted Postgres costs no failed request
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", default=True),
    )
}
# the collector's grouped INSERT is a prepared statement on its connection (Postgres parses and
# plans it once per connection instead of once per statement: half its CPU for a single
# event); off behind a pooler in transaction mode that cannot keep prepared statements
# (PgBouncer before 1.21, or without max_prepared_statements)
CDP_DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", default=True)
# milliseconds between Postgres's checks that a running query's client is still connected
# (client_connection_check_interval, Postgres 14+; 0 = off): a killed worker's transaction
# ends within this long even while it waits on a lock, instead of holding its locks (cdp/db.py)
CDP_DB_CLIENT_CHECK_MS = env_int("CDP_DB_CLIENT_CHECK_MS", 1000)
DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME", "") or None
if not DATABASES["default"]["TEST"]["NAME"]:
    del DATABASES["default"]["TEST"]["NAME"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Celery: REDIS_URL / CELERY_BROKER_URL, else the embedded Redis -------------------
REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
if not REDIS_URL and not CELERY_BROKER_URL:
    REDIS_URL = runtime.embedded_redis_url()
    os.environ["REDIS_URL"] = REDIS_URL
if not REDIS_URL:
    REDIS_URL = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = runtime.celery_url_for(REDIS_URL)
# queues by kind of work, each runnable on its own workers (cdp/queues.py, README
# "Scale-out"); the prefix keeps deployments or test runs sharing one broker apart
CDP_QUEUE_PREFIX = env_str("CDP_QUEUE_PREFIX", "")
CELERY_TASK_DEFAULT_QUEUE = env_str(
    "CELERY_TASK_DEFAULT_QUEUE", CDP_QUEUE_PREFIX + queues.CELERY_DEFAULT_QUEUE
)
CELERY_TASK_ROUTES = queues.task_routes(prefix=CDP_QUEUE_PREFIX)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's prefork pool, replacing a dead process within half a second (cdp/celery_pool.py);
# `--pool threads` on the command line (the activation worker) still wins
CELERY_WORKER_POOL = "cdp.celery_pool:TaskPool"
# the CPU priority (nice value, 0-19) of Celery workers: on a machine shared with the web
# server, a burst of events is accepted at full speed and processed with the cores the
# collector leaves (cdp/celery.py); 0 = the same priority as the web server
CDP_WORKER_NICE = env_int("CDP_WORKER_NICE", 10)
if not 0 <= CDP_WORKER_NICE <= 19:
    raise ImproperlyConfiguredEnv(f"CDP_WORKER_NICE={CDP_WORKER_NICE}: expected 0 to 19")
# Celery's Django fix-up closes the database connections after every task unless this many
# tasks have not run yet: out of reach, so a worker keeps its connections like a web server
# process, for CONN_MAX_AGE and checked before reuse (cdp/celery.py ends each task)
CELERY_DB_REUSE_MAX = 2**62
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
# /readyz: how old the newest worker heartbeat and beat tick may be (cdp/health.py)
CDP_READY_WORKER_MAX_AGE = env_int("CDP_READY_WORKER_MAX_AGE", 60)
CDP_READY_BEAT_MAX_AGE = env_int("CDP_READY_BEAT_MAX_AGE", 120)
CELERY_BEAT_SCHEDULE = {
    # proves to /readyz that beat runs and the default queue is consumed (a late tick expires)
    "health-beat-tick": {
        "task": "cdp.tasks.beat_tick",
        "schedule": env_int("CDP_BEAT_TICK_SECONDS", 15),
        "options": {"expires": CDP_READY_BEAT_MAX_AGE},
    },
    "sweep-pending-events": {
        "task": "profiles.tasks.sweep_pending_events",
        "schedule": env_int("CDP_SWEEP_SECONDS", 15),
    },
    "computed-traits-windows": {
        "task": "profiles.tasks.computed_traits_refresh_windows",
        "schedule": env_int("CDP_COMPUTED_WINDOWS_SECONDS", 300),
    },
    "builtin-traits": {
        "task": "profiles.tasks.builtin_traits_refresh_all",
        "schedule": env_int("CDP_BUILTIN_TRAITS_SECONDS", 3600),
    },
    "segment-window-expiries": {
        "task": "segments.tasks.segments_process_expiries",
        "schedule": env_int("CDP_SEGMENT_EXPIRY_SECONDS", 5),
    },
    # full re-evaluation of every published segment: catches computed traits refreshed on
    # their own schedule and anything real-time could not see
    "segments-refresh": {
        "task": "segments.tasks.segments_refresh_all",
        "schedule": env_int("CDP_SEGMENT_REFRESH_SECONDS", 900),
    },
    # the pending-events queue's dead rows, vacuumed by the platform (autovacuum may be off)
    "vacuum-pending-events": {
        "task": "profiles.tasks.vacuum_pending_events",
        "schedule": env_int("CDP_QUEUE_VACUUM_SECONDS", 10),
    },
    # the events table's daily partitions, created CDP_EVENT_PARTITIONS_AHEAD days ahead
    "event-partitions": {
        "task": "profiles.tasks.ensure_event_partitions",
        "schedule": env_int("CDP_EVENT_PARTITIONS_SECONDS", 3600),
    },
    # event-level data past each workspace's retention period, a whole day at a time
    # audience-sync deltas planned, due and stuck deliveries re-kicked
    "activation-tick": {
        "task": "activation.tasks.tick",
        "schedule": env_int("CDP_ACTIVATION_TICK_SECONDS", 3),
    },
    # ML models: scheduled and drift-triggered retraining, runs whose worker died
    "ml-schedule": {
        "task": "segments.ml.tasks.schedule",
        "schedule": env_int("CDP_ML_SCHEDULE_SECONDS", 300),
    },
    # each running experiment's results, kept so the page draws the lift over time
    "experiments-analyse": {
        "task": "activation.experiments.tasks.analyse_running",
        "schedule": env_int("CDP_EXPERIMENTS_ANALYSE_SECONDS", 6 * 3600),
    },
    # the overview's heavy widgets (scans of all profiles), for overviews people look at
    "overview-refresh": {
        "task": "cdp.tasks.overview_refresh_viewed",
        "schedule": env_int("CDP_OVERVIEW_REFRESH_SECONDS", 120),
    },
    "retention": {
        "task": "consent.tasks.retention_enforce_all",
        "schedule": env_int("CDP_RETENTION_SECONDS", 3600),
    },
}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out attempts
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# --- Login throttling (django-axes): after CDP_LOGIN_FAILURE_LIMIT wrong passwords for one
#     username, or from one IP address, sign-in is refused for CDP_LOGIN_COOLOFF_MINUTES
#     (429, the lockout page); each lockout is audited; `manage.py cdp_unlock` lifts one. ---
AXES_FAILURE_LIMIT = env_int("CDP_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CDP_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins are not stored
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_VERBOSE = False
# failed API-token authentications per client IP before 429 (same cool-off)
CDP_TOKEN_FAILURE_LIMIT = env_int("CDP_TOKEN_FAILURE_LIMIT", 30)
# the overview computes a heavy widget that has no value yet inside the request (tests), rather
# than showing "computing" while a task does it
CDP_OVERVIEW_INLINE = env_bool("CDP_OVERVIEW_INLINE", default=False)

# how long a new member's set-password link (Settings → Members) works
PASSWORD_RESET_TIMEOUT = env_int("CDP_MEMBER_LINK_SECONDS", 3 * 24 * 3600)

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cdp.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cdp.permissions.IsWorkspaceMember"],
    # JSON only: form encodings cannot carry the types the schema promises (lists, booleans,
    # null); anything else is 415 unsupported_media_type
    "DEFAULT_PARSER_CLASSES": ["cdp.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "cdp.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "cdp.api_errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CDP API",
    "DESCRIPTION": "Management API of the self-hosted Customer Data Platform. Authenticate "
    "with a session or `Authorization: Token <key>`; every call is scoped to one workspace.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cdp.schema.error_responses_hook",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    # served from our own static files: no CDN (self-hosted, may run offline)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # several models have a `status`: each choice set gets its own name in the schema
    "ENUM_NAME_OVERRIDES": {
        "SourceKindEnum": "profiles.models.SourceKind",
        "FailedEventStatusEnum": "profiles.models.FailedEventStatus",
        "MergeStatusEnum": "profiles.models.MergeStatus",
        "SegmentStatusEnum": "segments.models.SegmentStatus",
        "ConsentStatusEnum": "consent.models.ConsentStatus",
        "PrivacyRequestStatusEnum": "consent.models.PrivacyRequestStatus",
        "PropagationStatusEnum": "consent.models.PropagationStatus",
        "BuiltinTraitTypeEnum": "profiles.computed.serializers.BUILTIN_TYPES",
        "PrivacyRequestTypeEnum": "consent.models.PrivacyRequestType",
        "DestinationKindEnum": "activation.models.DestinationKind",
        "DeliveryKindEnum": "activation.models.DeliveryKind",
        "DeliveryStatusEnum": "activation.models.DeliveryStatus",
        "CircuitStateEnum": "activation.models.CircuitState",
        "SyncModeEnum": "activation.models.SyncMode",
        "SyncScheduleEnum": "activation.models.SyncSchedule",
        "RunKindEnum": "activation.models.RunKind",
        "AttemptOutcomeEnum": "activation.models.AttemptOutcome",
        "MemberStatusEnum": "cdp.models.MemberStatus",
    },
}

# --- Collector ---------------------------------------------------------------------------------
CDP_MAX_REQUEST_BYTES = env_int("CDP_MAX_REQUEST_BYTES", 4 * 1024 * 1024)
CDP_MAX_EVENT_BYTES = env_int("CDP_MAX_EVENT_BYTES", 64 * 1024)
CDP_DEFAULT_RATE_LIMIT = env_int("CDP_DEFAULT_RATE_LIMIT", 100_000)  # events/s per source
# invalid events kept per source and day (the rest are counted): 100,000 `{}` must not cost
# 100,000 rows; a source that reaches it raises an alert (audit row, log, Sources page)
CDP_DEAD_LETTER_QUOTA = env_int("CDP_DEAD_LETTER_QUOTA", 10_000)
CDP_KEY_CACHE_SECONDS = env_int("CDP_KEY_CACHE_SECONDS", 5)
# the decision API: the store's time budget per request (past it: defaults, degraded) and the
# decisions per second one write key may ask for in browser mode
CDP_DECIDE_BUDGET_MS = env_int("CDP_DECIDE_BUDGET_MS", 50)
CDP_DECIDE_BROWSER_RATE = env_int("CDP_DECIDE_BROWSER_RATE", 1000)
CDP_KICK_INTERVAL_MS = env_int("CDP_KICK_INTERVAL_MS", 200)
CDP_PROCESS_BATCH_SIZE = env_int("CDP_PROCESS_BATCH_SIZE", 1000)
# a drain whose batch was not full starts its next one no sooner than this after the last one
# began: a trickle is processed in a few batches a second (each batch has fixed costs), a
# backlog in full batches without waiting; it bounds the wait an event adds under light load
CDP_PROCESS_INTERVAL_MS = env_int("CDP_PROCESS_INTERVAL_MS", 250)
CDP_QUEUE_VACUUM_DEAD_ROWS = env_int("CDP_QUEUE_VACUUM_DEAD_ROWS", 20_000)
CDP_EVENT_PARTITIONS_AHEAD = env_int("CDP_EVENT_PARTITIONS_AHEAD", 7)  # daily partitions
# concurrent pipeline drains of one workspace (more collide on the same people's identities)
CDP_DRAINS_PER_WORKSPACE = env_int("CDP_DRAINS_PER_WORKSPACE", 2)
if not 1 <= CDP_DRAINS_PER_WORKSPACE <= 16:  # profiles.tasks.processing.DRAIN_SLOTS_MAX
    raise ImproperlyConfiguredEnv("CDP_DRAINS_PER_WORKSPACE: expected 1 to 16")
CDP_SUPPRESSION_HMAC_KEY = env_str("CDP_SUPPRESSION_HMAC_KEY", "") or SECRET_KEY
# --- Activation: destination secrets are Fernet-encrypted with CDP_SECRETS_KEY (comma-separated
#     keys, newest first, for rotation; unset: derived from SECRET_KEY). Deliveries go out from
#     the `activation` queue; CDP_ACTIVATION_TICK_SECONDS is the beat that plans real-time sync
#     deltas and re-kicks due deliveries. ---
CDP_SECRETS_KEY = env_str("CDP_SECRETS_KEY", "")
CDP_ACTIVATION_TICK_SECONDS = env_int("CDP_ACTIVATION_TICK_SECONDS", 3)
CDP_ACTIVATION_THREADS = env_int("CDP_ACTIVATION_THREADS", 8)  # the activation worker's pool
# threads (each with its database connection) planning a sync's first run set-based
CDP_SYNC_PLANNERS = env_int("CDP_SYNC_PLANNERS", 2)
CDP_FILES_ROOT = env_str("CDP_FILES_ROOT", "")  # where "local folder" file destinations may write
# days a privacy export bundle stays downloadable (it holds a person's data in full)
# a shortened retention period takes effect after this many days (cancellable meanwhile)
CDP_RETENTION_GRACE_DAYS = env_int("CDP_RETENTION_GRACE_DAYS", 7)
CDP_PRIVACY_EXPORT_DAYS = env_int("CDP_PRIVACY_EXPORT_DAYS", 30)

# LOG_FORMAT=json: one JSON object a line (cdp/logs.py); text carries the request id too
LOG_FORMAT = logs.check_format(env_str("LOG_FORMAT", "text"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": logs.filters(),
    "formatters": logs.formatters(),
    "handlers": {"console": logs.console_handler(LOG_FORMAT)},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Python warnings (logging.captureWarnings, which Django turns on) in the same format
        # as everything else: with LOG_FORMAT=json a warning is one JSON line too
        "py.warnings": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.server": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
        # a line per request, with the destination's URL (query strings may carry tokens)
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "botocore": {"level": "WARNING"},
        "pika": {"level": "WARNING"},
    },
}
# CDP_LOG_DIR (the launcher sets var/log): errors and their tracebacks also go to
# errors.log there, where an operator finds them even when stderr is discarded (a daemonised
# gunicorn); each carries the request id its 500/503 answer names.
LOG_DIR = env_str("CDP_LOG_DIR", "")
if LOG_DIR:
    Path(LOG_DIR).mkdir(parents=True, exist_ok=True)
    LOGGING["handlers"]["errors_file"] = {  # type: ignore[index]
        "class": "logging.handlers.RotatingFileHandler",
        "filename": str(Path(LOG_DIR) / "errors.log"),
        "maxBytes": 10 * 1024 * 1024,
        "backupCount": 5,
        "level": "ERROR",
        "formatter": LOG_FORMAT,
        "filters": ["context"],
    }
    LOGGING["root"]["handlers"].append("errors_file")  # type: ignore[index]

# --- Prometheus metrics (cdp/metrics.py): GET /metrics with "Authorization: Bearer <token>";
#     unset, the endpoint answers 404. CDP_METRICS_TOKEN_FILE reads it from a file.
CDP_METRICS_TOKEN = env_str("CDP_METRICS_TOKEN", "")

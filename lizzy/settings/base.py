"""Settings shared by every environment.

All configuration comes from the environment through one django-environ ``env`` object. Optional
integrations (Redis, a remote DynamoDB endpoint) switch on when their variable is present.
"""

from pathlib import Path

import environ
from csp.constants import NONCE

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# Local state: SQLite file, filesystem broker queue, backups, make run's logs. LIZZY_VAR_DIR moves it (the docs
# tests run a second make run beside yours without sharing its queue).
VAR_DIR = Path(env("LIZZY_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env("DJANGO_SECRET_KEY", default=None)
# Keys published in this repository (local and test settings): production refuses them.
DEVELOPMENT_KEY = "lizzy-local-development-key-not-for-production-use"
TEST_KEY = "lizzy-test-key"
PUBLISHED_KEYS = (DEVELOPMENT_KEY, TEST_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "lizzy.apps.LizzyAdminConfig",  # django.contrib.admin with the ops console's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by the project: /api/docs/ works offline
    "django_celery_beat",
    "django_celery_results",
    "lizzy",
    "sessions_app",
    "migration_app",
]

MIDDLEWARE = [
    "lizzy.observability.middleware.RequestObservabilityMiddleware",  # first: request id + latency of all
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "lizzy.urls"
WSGI_APPLICATION = "lizzy.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'lizzy.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["lizzy.formats"]  # one timestamp format in the console: 2026-12-01 14:05:09

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Cache ------------------------------------------------------------------------------------
# Redis when REDIS_URL is set, otherwise the process-local memory cache. Values are serialized as
# JSON: a pickle read back from a shared Redis is code execution.
REDIS_URL = env("REDIS_URL", default=None)
REDIS_SOCKET_TIMEOUT = env.float("LIZZY_REDIS_SOCKET_TIMEOUT", default=0.5)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Counters every process must share (sign-in failures, API throttles, webhook replay marks): Redis when
# configured, otherwise a table in Django's database (created by lizzy's migration 0003), never per process.
SHARED_CACHE = "shared"
CACHES[SHARED_CACHE] = (
    {**CACHES["default"], "KEY_PREFIX": "lizzy-shared"}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "lizzy_shared_cache"}
)

# --- Celery -----------------------------------------------------------------------------------
# Without a broker URL (and without Redis) Celery uses kombu's filesystem transport, which needs no
# server: good for a laptop, not for several machines.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery-queue"
    _queue_dir.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        # kombu's default is ./control in the working directory: keep it inside var/ with the rest.
        "control_folder": str(VAR_DIR / "celery-control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Unacknowledged (acks_late) messages come back after this many seconds; it must exceed the
    # longest task, or a long backfill chunk runs twice (kombu#337). See docs/OPERATIONS.md.
    # kombu sweeps for expired unacked messages every unacked_restore_interval x unacked_restore_throttle
    # seconds (10 x 10 by default): a killed worker's task would wait up to 100 s more. One sweep
    # (a ZRANGE) every LIZZY_BROKER_RESTORE_INTERVAL seconds instead (measured: tests/faults).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("LIZZY_VISIBILITY_TIMEOUT", default=3600),
        "unacked_restore_interval": env.int("LIZZY_BROKER_RESTORE_INTERVAL", default=10),
        "unacked_restore_throttle": 1,
    }
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Tasks are idempotent; a worker killed mid-task must not lose the message.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    # Persist consumed capacity (per table per day) for the ops console's cost figures.
    "lizzy-capacity-flush": {"task": "lizzy.tasks.capacity_flush_task", "schedule": 60.0},
}
CELERY_TIMEZONE = "UTC"
# Workers log through LOGGING below (redaction, secret scrubbing), not through a handler of Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- AWS / DynamoDB ---------------------------------------------------------------------------
AWS_REGION = env("AWS_REGION", default="us-east-1")
# botocore's own variable; None means "AWS itself" (the default credential chain and endpoint).
AWS_ENDPOINT_URL_DYNAMODB = env("AWS_ENDPOINT_URL_DYNAMODB", default=None)
DYNAMODB_CONNECT_TIMEOUT = env.float("LIZZY_DYNAMODB_CONNECT_TIMEOUT", default=2.0)
DYNAMODB_READ_TIMEOUT = env.float("LIZZY_DYNAMODB_READ_TIMEOUT", default=5.0)
DYNAMODB_MAX_ATTEMPTS = env.int("LIZZY_DYNAMODB_MAX_ATTEMPTS", default=3)
DYNAMODB_MAX_POOL_CONNECTIONS = env.int("LIZZY_DYNAMODB_MAX_POOL_CONNECTIONS", default=32)
# Whole-table reads (validation, backups) have their own client: a Scan page of 1 MB takes far longer than
# one GetItem (moto: over 5 s for a page of a 75,000-item table), and retrying it costs a page, not a user.
DYNAMODB_SCAN_READ_TIMEOUT = env.float("LIZZY_DYNAMODB_SCAN_READ_TIMEOUT", default=120.0)
DYNAMODB_SCAN_MAX_ATTEMPTS = env.int("LIZZY_DYNAMODB_SCAN_MAX_ATTEMPTS", default=5)

LIZZY_ENV = env("LIZZY_ENV", default="")
LIZZY_SESSION_TTL_SECONDS = env.int("LIZZY_SESSION_TTL_SECONDS", default=900)
# How often each process (web, Celery child, command) persists its consumed-capacity counters into the
# shared ledger, from its DynamoDB calls; it also does at exit. Negative: no automatic flush.
LIZZY_CAPACITY_FLUSH_SECONDS = env.float("LIZZY_CAPACITY_FLUSH_SECONDS", default=60.0)
LIZZY_DEFAULT_PHONE_REGION = env("LIZZY_DEFAULT_PHONE_REGION", default="US")
LIZZY_LOCAL_DYNAMODB_PORT = env.int("LIZZY_LOCAL_DYNAMODB_PORT", default=8001)

# --- SMS workflow (issue 3, docs/WORKFLOW.md) ----------------------------------------------------
# Twilio's auth token: when set, every webhook must carry a valid X-Twilio-Signature.
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default=None)
# The public URL Twilio calls (scheme + host, behind a proxy); the signature covers the full URL.
LIZZY_WEBHOOK_BASE_URL = env("LIZZY_WEBHOOK_BASE_URL", default=None)
LIZZY_PROFILE_CACHE_SECONDS = env.int("LIZZY_PROFILE_CACHE_SECONDS", default=300)
LIZZY_TRANSACTIONS_CACHE_SECONDS = env.int("LIZZY_TRANSACTIONS_CACHE_SECONDS", default=300)
LIZZY_WORKFLOW_HISTORY_LIMIT = env.int("LIZZY_WORKFLOW_HISTORY_LIMIT", default=50)
LIZZY_WORKFLOW_MESSAGE_LOG_LIMIT = env.int("LIZZY_WORKFLOW_MESSAGE_LOG_LIMIT", default=25)
LIZZY_WORKFLOW_MAX_ATTEMPTS = env.int("LIZZY_WORKFLOW_MAX_ATTEMPTS", default=30)
# How long an answered MessageSid (with its reply) is remembered in the shared cache: a signed webhook
# replayed within this window is answered again without running. Twilio signs no timestamp, so a replay
# after the window is not recognised; keep it longer than any capture could matter (2 days by default).
LIZZY_SMS_REPLAY_WINDOW_SECONDS = env.int("LIZZY_SMS_REPLAY_WINDOW_SECONDS", default=2 * 24 * 3600)

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        # Staff signed in to the admin can browse /api/docs/ with their session.
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Each view declares the permission every method needs (lizzy/permissions.py); a view that declares
    # nothing refuses every caller. docs/OPERATIONS.md, "Permission model".
    "DEFAULT_PERMISSION_CLASSES": ["lizzy.permissions.HasRequiredPermissions"],
    "DEFAULT_THROTTLE_CLASSES": ["lizzy.throttling.ApiUserRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON nested deeper than DynamoDB's 32 levels is a 400 before anything is read or written.
    "DEFAULT_PARSER_CLASSES": [
        "lizzy.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "lizzy.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lizzy API",
    "DESCRIPTION": "SMS sessions, CRM data and migrations into DynamoDB.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema maps every endpoint and parameter: callers sign in (token, or staff session for /api/docs/).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # /api/docs/ loads Swagger UI from our static files, not a CDN (drf-spectacular-sidecar).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Ops console and observability ----------------------------------------------------------------
LIZZY_ADMIN_URL = env("LIZZY_ADMIN_URL", default="admin/")
if not LIZZY_ADMIN_URL.endswith("/") or LIZZY_ADMIN_URL.startswith("/"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("LIZZY_ADMIN_URL must be a relative path ending in '/', for example 'ops-7f3a/'.")
# /metrics: with a token, scrapers send "Authorization: Bearer <token>"; staff signed in may always look.
LIZZY_METRICS_TOKEN = env("LIZZY_METRICS_TOKEN", default=None)
LIZZY_LOGIN_FAILURE_LIMIT = env.int("LIZZY_LOGIN_FAILURE_LIMIT", default=5)
LIZZY_LOGIN_LOCKOUT_SECONDS = env.int("LIZZY_LOGIN_LOCKOUT_SECONDS", default=900)
LIZZY_LOG_FORMAT = env("LIZZY_LOG_FORMAT", default="json")  # "json" (one object per line) or "text"
# Requests per token owner (DRF rate syntax, "1200/min"); empty turns API throttling off.
LIZZY_API_THROTTLE_RATE = env("LIZZY_API_THROTTLE_RATE", default="1200/min") or None
LIZZY_READYZ_CACHE_SECONDS = env.float("LIZZY_READYZ_CACHE_SECONDS", default=1.0)

# --- Transport behind proxies -------------------------------------------------------------------
# How many reverse proxies (load balancer, nginx) stand between clients and gunicorn. 0: none, so
# X-Forwarded-For and X-Forwarded-Proto are a client's claims and are ignored. N: the client address is
# the Nth address from the right of X-Forwarded-For, and X-Forwarded-Proto says whether it was HTTPS.
LIZZY_TRUSTED_PROXY_HOPS = env.int("LIZZY_TRUSTED_PROXY_HOPS", default=0)
if LIZZY_TRUSTED_PROXY_HOPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    REST_FRAMEWORK["NUM_PROXIES"] = LIZZY_TRUSTED_PROXY_HOPS

# --- Content-Security-Policy (django-csp) ----------------------------------------------------------
# Everything from this origin only: the admin's and Swagger UI's scripts and styles are served locally
# (no CDN). The two inline scripts of the ops console carry the request's nonce; the admin and Swagger UI
# set inline style attributes, which 'unsafe-inline' allows for styles only (never for scripts).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "lizzy.observability.logs.RequestIdFilter"},
        "redact": {"()": "lizzy.observability.logs.RedactingFilter"},
    },
    "formatters": {
        "json": {"()": "lizzy.observability.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text" if LIZZY_LOG_FORMAT == "text" else "json",
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LIZZY_LOG_LEVEL", default="INFO")},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # The middleware logs each request once (redacted, with its id); Django's own line would repeat it.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# --- Session store modes, Redis hot tier, write-behind (docs/SESSION_STORE.md) -----------------
# The session Redis; defaults to REDIS_URL. Keys start with LIZZY_REDIS_PREFIX (legacy: "lizzy:").
LIZZY_SESSION_REDIS_URL = env("LIZZY_SESSION_REDIS_URL", default=None)
LIZZY_REDIS_PREFIX = env("LIZZY_REDIS_PREFIX", default="lizzy:")
# Pins the mode and ignores the database (tests, or an emergency while the database is down).
LIZZY_SESSION_STORE_MODE = env("LIZZY_SESSION_STORE_MODE", default=None)
LIZZY_SESSION_STORE_DEFAULT_MODE = env("LIZZY_SESSION_STORE_DEFAULT_MODE", default="dynamodb_only")
LIZZY_MODE_CACHE_SECONDS = env.float("LIZZY_MODE_CACHE_SECONDS", default=2.0)
LIZZY_BREAKER_THRESHOLD = env.int("LIZZY_BREAKER_THRESHOLD", default=5)
LIZZY_BREAKER_RESET_SECONDS = env.float("LIZZY_BREAKER_RESET_SECONDS", default=10.0)
LIZZY_SHADOW_READ_RATE = env.float("LIZZY_SHADOW_READ_RATE", default=1.0)
LIZZY_SHADOW_WINDOW_SECONDS = env.int("LIZZY_SHADOW_WINDOW_SECONDS", default=3600)
LIZZY_FLUSH_INTERVAL = env.float("LIZZY_FLUSH_INTERVAL", default=5.0)
LIZZY_FLUSH_LOCK_SECONDS = env.float("LIZZY_FLUSH_LOCK_SECONDS", default=60.0)
LIZZY_FLUSH_MAX_ITEMS = env.int("LIZZY_FLUSH_MAX_ITEMS", default=10000)
# Conditional PutItem calls a flush keeps in flight (docs/SESSION_STORE.md, "Write-behind and the loss window").
LIZZY_FLUSH_CONCURRENCY = env.int("LIZZY_FLUSH_CONCURRENCY", default=4)
# After a write-behind save went straight to DynamoDB (Redis away), the admin reports flushes as
# version-checked for this long (every flush write is conditional anyway: docs/SESSION_STORE.md).
LIZZY_FLUSH_FENCE_SECONDS = env.int("LIZZY_FLUSH_FENCE_SECONDS", default=3600)
# A deleted or expired session leaves a tombstone in Redis for this long (write-behind: until flushed), so a
# cache fill from a read made before the delete cannot bring it back (docs/SESSION_STORE.md, "Tombstones").
LIZZY_TOMBSTONE_SECONDS = env.int("LIZZY_TOMBSTONE_SECONDS", default=60)
LIZZY_PRESENCE_SECONDS = env.int("LIZZY_PRESENCE_SECONDS", default=30)
# Server-sent event streams hold a thread each (lizzy/stream_slots.py): per worker process (unset: half the
# worker's threads under lizzy.observability.gunicorn, else 1), per user, and in total across processes.
LIZZY_EVENT_STREAMS_PER_PROCESS = env.int("LIZZY_EVENT_STREAMS_PER_PROCESS", default=None)
LIZZY_EVENT_STREAMS_PER_USER = env.int("LIZZY_EVENT_STREAMS_PER_USER", default=2)
LIZZY_EVENT_STREAMS_TOTAL = env.int("LIZZY_EVENT_STREAMS_TOTAL", default=32)
CELERY_BEAT_SCHEDULE |= {
    # Write-behind: dirty sessions reach DynamoDB within one interval. A Redis lock keeps duplicated
    # beats (django-celery-beat#337) from flushing twice at once; a missed run expires, it does not pile up.
    "sessions-flush": {
        "task": "sessions_app.tasks.sessions_flush_task",
        "schedule": LIZZY_FLUSH_INTERVAL,
        "options": {"expires": LIZZY_FLUSH_INTERVAL},
    },
}

# --- Migrations into DynamoDB (migration_app) -------------------------------------------------
# Secret for hmac_sha256() in mapping templates (seed 002's keyed e-mail hash); required only by
# mappings that use it, which then fail their check with this variable's name.
LIZZY_MAPPING_HMAC_KEY = env("LIZZY_MAPPING_HMAC_KEY", default="")
LIZZY_BACKUP_DIR = env("LIZZY_BACKUP_DIR", default=str(VAR_DIR / "backups"))
LIZZY_BACKUP_SEGMENTS = env.int("LIZZY_BACKUP_SEGMENTS", default=4)  # parallel Scan segments of an export
# How a backup is taken (docs/MIGRATIONS.md, "Backups and restore"): auto = DynamoDB's on-demand CreateBackup where
# the endpoint has it and the export is expected to take at least LIZZY_BACKUP_EXPORT_MAX_SECONDS, else the
# JSON Lines export; native = always CreateBackup (an error where the endpoint lacks it); export = always the export.
LIZZY_BACKUP_METHOD = env("LIZZY_BACKUP_METHOD", default="auto")
if LIZZY_BACKUP_METHOD not in ("auto", "native", "export"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LIZZY_BACKUP_METHOD must be auto, native or export, not {LIZZY_BACKUP_METHOD!r}.")
LIZZY_BACKUP_EXPORT_MAX_SECONDS = env.float("LIZZY_BACKUP_EXPORT_MAX_SECONDS", default=300.0)
# Point-in-time recovery on a plan's target tables, switched on by setup where the endpoint has it (AWS bills it
# by table size: off for accounts that do not want it).
LIZZY_BACKUP_PITR = env.bool("LIZZY_BACKUP_PITR", default=True)
# How long a backup estimate (DescribeTable plus a 200-item Scan per table) is kept for the pages that show it:
# a plan page shows the cached one and its age, and never Scans on load.
LIZZY_BACKUP_ESTIMATE_CACHE_SECONDS = env.int("LIZZY_BACKUP_ESTIMATE_CACHE_SECONDS", default=600)
LIZZY_MIGRATION_CHUNK_SIZE = env.int("LIZZY_MIGRATION_CHUNK_SIZE", default=500)
# Migration source connections (migration_app/sources/base.py): how long to wait for a connection, and for one
# query (a COUNT(*) or a segment boundary over a large table is the slowest).
LIZZY_SOURCE_CONNECT_TIMEOUT = env.float("LIZZY_SOURCE_CONNECT_TIMEOUT", default=10.0)
LIZZY_SOURCE_STATEMENT_TIMEOUT = env.float("LIZZY_SOURCE_STATEMENT_TIMEOUT", default=600.0)
# A PostgreSQL superuser (or pg_read_server_files member) or a MySQL account with FILE/SUPER can read the database
# server's files from a "read-only" query: such a source role is refused unless this says it is trusted.
LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE = env.bool("LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE", default=False)
# BatchWriteItem calls a backfill segment keeps in flight (docs/BENCHMARKS.md, benchmark 4).
LIZZY_MIGRATION_WRITE_CONCURRENCY = env.int("LIZZY_MIGRATION_WRITE_CONCURRENCY", default=4)
LIZZY_MIGRATION_CLEANUP_WAIT_SECONDS = env.int("LIZZY_MIGRATION_CLEANUP_WAIT_SECONDS", default=7 * 24 * 3600)
LIZZY_MIGRATION_QUEUE = env("LIZZY_MIGRATION_QUEUE", default="migrations")
# Work units: rows per unit (about a minute of writing at ~2,000 items/s), the lease a runner holds on one
# (renewed at every page; a killed worker's unit is taken over once it expires), transient-error retries.
# Validation's memory: digests per bucket of the item-key hash, then details of differing buckets in rounds of
# at most this many target items (about 100 bytes each).
LIZZY_VALIDATION_BUCKETS = env.int("LIZZY_VALIDATION_BUCKETS", default=4096)
LIZZY_VALIDATION_MAX_KEYS = env.int("LIZZY_VALIDATION_MAX_KEYS", default=200_000)
LIZZY_VALIDATION_RANGE_ROWS = env.int("LIZZY_VALIDATION_RANGE_ROWS", default=500_000)  # source rows per part
# validate_task (admin, API, beat): its parts as Celery tasks merged by a chord, or all in one process
LIZZY_VALIDATION_DISTRIBUTED = env.bool("LIZZY_VALIDATION_DISTRIBUTED", default=True)
# While a plan's CDC stream is active, keys that differ are followed until their changes in flight arrive
# (services/validation_settle.py): at most this many keys, rounds, and seconds of waiting for the worker per round.
LIZZY_VALIDATION_SETTLE_MAX_KEYS = env.int("LIZZY_VALIDATION_SETTLE_MAX_KEYS", default=10_000)
LIZZY_VALIDATION_SETTLE_ROUNDS = env.int("LIZZY_VALIDATION_SETTLE_ROUNDS", default=3)
LIZZY_VALIDATION_SETTLE_SECONDS = env.float("LIZZY_VALIDATION_SETTLE_SECONDS", default=30.0)
LIZZY_MIGRATION_UNIT_ROWS = env.int("LIZZY_MIGRATION_UNIT_ROWS", default=100_000)
LIZZY_MIGRATION_LEASE_SECONDS = env.float("LIZZY_MIGRATION_LEASE_SECONDS", default=300.0)
LIZZY_MIGRATION_UNIT_RETRIES = env.int("LIZZY_MIGRATION_UNIT_RETRIES", default=5)
LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS = env.float("LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS", default=1.0)
# A unit task takes the run's next free unit while its own last pages drain, for this long (0: one unit a task).
LIZZY_MIGRATION_CHAIN_SECONDS = env.float("LIZZY_MIGRATION_CHAIN_SECONDS", default=60.0)
# Change data capture (migration_app/cdc, docs/MIGRATIONS.md "Change data capture").
LIZZY_CDC_SLOT_PREFIX = env("LIZZY_CDC_SLOT_PREFIX", default="lizzy")  # replication slot and publication names
LIZZY_CDC_POLL_SECONDS = env.float("LIZZY_CDC_POLL_SECONDS", default=0.5)  # idle wait between two peeks
LIZZY_CDC_BATCH_CHANGES = env.int("LIZZY_CDC_BATCH_CHANGES", default=5000)  # messages per peek (whole transactions)
LIZZY_CDC_LEASE_SECONDS = env.float("LIZZY_CDC_LEASE_SECONDS", default=30)
LIZZY_CDC_SLOT_CREATE_TIMEOUT_SECONDS = env.float("LIZZY_CDC_SLOT_CREATE_TIMEOUT_SECONDS", default=300)
LIZZY_CDC_CUTOVER_MAX_LAG_SECONDS = env.float("LIZZY_CDC_CUTOVER_MAX_LAG_SECONDS", default=5)
LIZZY_CDC_ALARM_LAG_SECONDS = env.float("LIZZY_CDC_ALARM_LAG_SECONDS", default=300)
LIZZY_CDC_ALARM_LAG_BYTES = env.int("LIZZY_CDC_ALARM_LAG_BYTES", default=1024**3)
LIZZY_CDC_ALARM_UNREAD_SECONDS = env.float("LIZZY_CDC_ALARM_UNREAD_SECONDS", default=900)  # an abandoned slot
# MySQL/MariaDB: a binlog reader is a replica to the server; its server_id is this plus the stream's id
LIZZY_CDC_BINLOG_SERVER_ID_BASE = env.int("LIZZY_CDC_BINLOG_SERVER_ID_BASE", default=1_500_000_000)
CELERY_TASK_ROUTES = {"migration_app.tasks.*": {"queue": LIZZY_MIGRATION_QUEUE}}
CELERY_BEAT_SCHEDULE |= {
    "migration-catch-ups": {
        "task": "migration_app.tasks.scheduled_catch_ups_task",
        "schedule": env.int("LIZZY_MIGRATION_CATCH_UP_SECONDS", default=300),
    },
    "migration-validations": {
        "task": "migration_app.tasks.scheduled_validations_task",
        "schedule": env.int("LIZZY_MIGRATION_VALIDATE_SECONDS", default=3600),
    },
}

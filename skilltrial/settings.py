"""The one settings module. Everything that differs between deployments comes from the
environment; the defaults are the embedded demo (SQLite under var/, no outside services) with
secure choices (DEBUG off unless asked)."""

from __future__ import annotations

import sys
from pathlib import Path

import dj_database_url

from skilltrial.env import env_bool, env_int, env_list, env_str, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SKILLTRIAL_VAR_DIR", str(BASE_DIR / "var")))
TESTING = "pytest" in sys.modules or env_bool("SKILLTRIAL_TESTING")

SECRET_KEY = secret_key(VAR_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "trials",
    "quizzes",
    "analysis",
    "api",
]

# Under the ASGI server (skilltrial/asgi.py sets SKILLTRIAL_ASGI) static files are served in
# front of Django by ServeStatic's ASGI application: WhiteNoise's middleware is synchronous,
# and in an async middleware chain it costs two thread hand-offs on every request.
_ASGI = env_bool("SKILLTRIAL_ASGI", False)
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    *([] if _ASGI else ["whitenoise.middleware.WhiteNoiseMiddleware"]),
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "skilltrial.middleware.BusyMiddleware",
]

ROOT_URLCONF = "skilltrial.urls"
WSGI_APPLICATION = "skilltrial.wsgi.application"
ASGI_APPLICATION = "skilltrial.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "skilltrial" / "templates"],
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

_default_db = f"sqlite:///{VAR_DIR / 'skilltrial.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", _default_db) or _default_db,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for the write lock instead of failing at once when two requests write together.
    # BEGIN IMMEDIATE: a transaction that reads then writes waits for the lock instead of
    # failing with "database is locked" when autosave, telemetry and a run arrive together.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Server-side cursors (QuerySet.iterator(), used by the data sets and exports) are read to
    # the end, so plan them for all rows, not the first 10%: with the default PostgreSQL picks
    # nested loops and the participants data set of 10k people takes 28 s instead of 4 s.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "options", "-c cursor_tuple_fraction=1.0"
    )
    # Behind PgBouncer in transaction pooling mode a server-side cursor cannot live across
    # statements: DB_DISABLE_SERVER_SIDE_CURSORS=1 (with DB_POOL_SIZE=0).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool(
        "DB_DISABLE_SERVER_SIDE_CURSORS", False
    )
    # A pool of connections per server process (psycopg_pool), shared by its request threads.
    # Under ASGI every request runs its synchronous code in a thread of its own, so a
    # persistent connection (DB_CONN_MAX_AGE) would die with that thread; the pool keeps them.
    # DB_POOL_SIZE=0 turns it off (then DB_CONN_MAX_AGE applies, default 60 s).
    if (pool_size := env_int("DB_POOL_SIZE", 8)) > 0:
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses both at once
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": min(2, pool_size),
            "max_size": pool_size,
            "timeout": env_int("DB_POOL_TIMEOUT", 20),
        }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
# frontend/dist holds the esbuild bundle (built by `make`, never committed).
STATICFILES_DIRS = [BASE_DIR / "skilltrial" / "static", BASE_DIR / "frontend" / "dist"]
(BASE_DIR / "frontend" / "dist").mkdir(parents=True, exist_ok=True)
# WhiteNoise warns (an error under the test suite) when the folder is missing.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/manage/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("SECURE_SSL_REDIRECT", False):
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 3600)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Redis (REDIS_URL) makes app servers stateless: the cache, Celery's broker and its results
# live there. Without it (the embedded default) the cache is per process and Celery's tasks run
# in the calling thread (eager mode): the same task code, no outside service.
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "skilltrial"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    # Token first: an anonymous request then gets 401 with "WWW-Authenticate: Token" (the
    # first class names the challenge); browsers still use their login session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.IdCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "skilltrial API",
    "DESCRIPTION": (
        "Read-only access to trials, participants (de-identified), allocations, events, quiz "
        "items, tidy data sets, export bundles and analysis results. Authenticate with a token "
        "(`Authorization: Token <key>`; create one with `manage.py drf_create_token USER`) or "
        "a login session. Experimenters and statisticians may read; graders may not."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/",
    "ENUM_NAME_OVERRIDES": {
        "TrialStatusEnum": "trials.models.Trial.Status",
        "ParticipantStatusEnum": "trials.models.Participant.Status",
        "StageTypeEnum": "trials.models.Stage.Type",
        "ItemStatusEnum": "quizzes.models.ItemResponse.Status",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "skilltrial": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
        "django": {"handlers": ["console"], "level": "WARNING"},
    },
}

# The code runner (participant code in the sandbox). SKILLTRIAL_SANDBOX=auto|bwrap|fallback
# is read by the runner itself.
RUNNER_CPU_SECONDS = env_int("RUNNER_CPU_SECONDS", 10)
RUNNER_WALL_SECONDS = env_int("RUNNER_WALL_SECONDS", 15)
RUNNER_MEMORY_BYTES = env_int("RUNNER_MEMORY_MB", 512) * 1024 * 1024

# Reverse proxies in front of the app that append to X-Forwarded-For (0: none, REMOTE_ADDR is
# the client). Used only for the hashed address of duplicate flags (trials/identity.py).
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)

# Threads per server process in which Run, Check and assistant replies wait for the sandbox
# or the LLM (skilltrial/waiting.py): waits beyond this many queue in the process.
WAITING_THREADS = env_int("WAITING_THREADS", 128)

# Celery (skilltrial/celery.py). Every task is acknowledged after it ran and requeued when its
# worker is lost; one message at a time per worker process keeps participants' runs in order.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or REDIS_URL
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 7 * 24 * 3600)
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "jobs"
CELERY_TASK_ROUTES = {
    "trials.sandbox": {"queue": "runs"},
    "trials.record_run": {"queue": "results"},
}
# A message taken by a worker that then died goes back to its queue after this many seconds
# (Redis has no acknowledgement of its own). The runs and results workers use a short one and
# their own bookkeeping keys (deploy/: CELERY_VISIBILITY_TIMEOUT=60, CELERY_UNACKED_KEY=runs);
# the jobs worker a long one, longer than any export.
_unacked = env_str("CELERY_UNACKED_KEY", "")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    **(
        {
            "unacked_key": f"unacked_{_unacked}",
            "unacked_index_key": f"unacked_index_{_unacked}",
            "unacked_mutex_key": f"unacked_mutex_{_unacked}",
        }
        if _unacked
        else {}
    ),
}
# Days an export job's zip is kept in the database (analysis.Job).
JOB_OUTPUT_DAYS = env_int("JOB_OUTPUT_DAYS", 7)
# Waiting on a run from inside a job (quiz code grading) is allowed: the run is on another queue.
SANDBOX_WAIT_SECONDS = env_int("SANDBOX_WAIT_SECONDS", 3600)

# Where the participant pages send people who ask about the study (shown on error pages).
SKILLTRIAL_CONTACT = env_str("SKILLTRIAL_CONTACT", "the research team")

"""Settings for License Pools, read from environment variables.

With no environment set, the portal runs in its embedded default: SQLite in
``var/``, Celery tasks executed in-process, and a secret key generated once
into ``var/secret_key``. Setting ``DATABASE_URL`` and ``CELERY_BROKER_URL``
switches to PostgreSQL and a Redis-backed Celery worker; production must
also set ``DJANGO_SECRET_KEY``.
"""
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from licensepools.links import fallback_base_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LICENSEPOOLS_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use true or false.")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATABASE_URL = os.environ.get("DATABASE_URL", "")
EMBEDDED = not DATABASE_URL


def load_secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    if not EMBEDDED:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is missing: production settings (DATABASE_URL set) need a secret key.")
    # The embedded default keeps one generated key so sessions and encrypted secrets survive restarts.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = load_secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# Key for client secrets stored in the database. Defaults to one derived from SECRET_KEY;
# set it separately so that rotating SECRET_KEY does not make stored secrets unreadable.
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "guardian",
    "axes",
    "graphsync",
    "pools",
    "rbac",
    "chargeback",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Replaces the response to a sign-in that django-axes rejected with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "licensepools.urls"
WSGI_APPLICATION = "licensepools.wsgi.application"

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

if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # SQLite has no row locks: IMMEDIATE transactions take the write lock at BEGIN, so concurrent requests
    # of the development server queue for up to the timeout instead of failing with "database is locked".
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "licensepools.sqlite3",
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }
else:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out sign-in is refused before any password is checked.
    "licensepools.sign_in.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "pools:home"
LOGOUT_REDIRECT_URL = "login"

# Sign-in throttling (django-axes): after LOGIN_FAILURE_LIMIT failed sign-ins with one user name from one
# address, that pair is locked out until LOGIN_LOCKOUT_MINUTES have passed since its latest attempt. An
# attempt during the lockout, even with the right password, fails and starts the wait again. This covers
# the portal's sign-in page and the Django admin's, which both authenticate through Django's backends.
# NOTE: the address is REMOTE_ADDR. Behind a reverse proxy every client shares the proxy's address, so the
# lockout then applies to the user name from anywhere.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "licensepools.sign_in.lockout_response"
# Only failures are stored; successful sign-ins would otherwise add a row each, forever.
AXES_DISABLE_ACCESS_LOG = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English"))]
# Project formats override Django's per language, so English times always show their minutes.
FORMAT_MODULE_PATH = ["licensepools.formats"]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
# WhiteNoise serves collected files from STATIC_ROOT and warns on every request while it is missing.
try:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
except OSError:
    pass
STATICFILES_DIRS = [BASE_DIR / "static"]
# Front-end packages come from the npm registry (package.json) and are served by the portal itself.
NODE_MODULES = BASE_DIR / "node_modules"
for prefix, folder in [
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/pico", NODE_MODULES / "@picocss" / "pico" / "css"),
]:
    if folder.is_dir():
        STATICFILES_DIRS.append((prefix, folder))
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# API token throttling: after API_TOKEN_FAILURE_LIMIT requests with an invalid token from one address within
# API_TOKEN_FAILURE_WINDOW_MINUTES of the first, that address's token requests get 429 until the window
# ends, even with a valid token. 0 turns it off. ``licensepools.token_throttle`` has the details.
API_TOKEN_FAILURE_LIMIT = int(os.environ.get("API_TOKEN_FAILURE_LIMIT", "10"))
API_TOKEN_FAILURE_WINDOW_MINUTES = float(os.environ.get("API_TOKEN_FAILURE_WINDOW_MINUTES", "15"))

REST_FRAMEWORK = {
    # DRF takes the WWW-Authenticate header from the first class. Token authentication comes first, so a
    # request without valid credentials gets 401 with "WWW-Authenticate: Token". Requests that send no
    # Authorization header still use the session, with its CSRF check on unsafe methods.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "licensepools.token_throttle.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "licensepools.api_errors.api_exception_handler",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "licensepools.pagination.PortalPageNumberPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "License Pools API",
    "DESCRIPTION": "Pools, allotments, license assignment and chargeback for Microsoft 365 tenants.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files come from the drf-spectacular-sidecar package, served by the portal, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
# Django's cache stores the API token failure counts. CACHE_URL, or else a Redis Celery broker, makes every
# web process share it; without either, each process keeps its own counts in memory.
CACHE_URL = os.environ.get("CACHE_URL", "") or CELERY_BROKER_URL
if CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "licensepools",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL or None)
# Without a broker, tasks run in the calling process: the embedded default needs no Redis.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "licensepools")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Task modules that autodiscovery (which imports each app's tasks.py) does not find.
CELERY_IMPORTS = ["pools.alert_tasks"]
CELERY_BEAT_SCHEDULE = {
    "sync-all-tenants": {
        "task": "graphsync.tasks.sync_all_tenants_task",
        "schedule": float(os.environ.get("SYNC_INTERVAL_SECONDS", "3600")),
    },
    # Daily alert digests, at the hour (in TIME_ZONE) set by ALERT_DIGEST_HOUR.
    "send-alert-digests": {
        "task": "pools.alert_tasks.send_alert_digests_task",
        "schedule": crontab(hour=int(os.environ.get("ALERT_DIGEST_HOUR", "7")), minute=0),
    },
    # Bulk jobs whose worker died resume from where they stopped.
    "resume-stale-bulk-jobs": {
        "task": "pools.tasks.resume_stale_bulk_jobs_task",
        "schedule": 60.0,
    },
}

# CA bundle for the Graph emulator's HTTPS endpoints; empty means the system trust store.
GRAPH_CA_BUNDLE = os.environ.get("GRAPH_CA_BUNDLE", "")
GRAPH_TIMEOUT_SECONDS = float(os.environ.get("GRAPH_TIMEOUT_SECONDS", "30"))
# Seconds per attempt for reading a user's licenses back after an assignment or removal lost its
# response. A person is waiting for the answer, so it is shorter than GRAPH_TIMEOUT_SECONDS.
GRAPH_READBACK_TIMEOUT_SECONDS = float(os.environ.get("GRAPH_READBACK_TIMEOUT_SECONDS", "5"))
# Graph throttling budget per tenant, shared by every worker through this Redis URL (empty: the Celery
# broker's Redis; without either, each process keeps its own). When the rate and burst are unset, they
# follow Graph's directory limit for the tenant's size (3,500, 5,000 or 8,000 resource units per
# 10 seconds). When set, they apply to every tenant.
GRAPH_THROTTLE_REDIS_URL = os.environ.get("GRAPH_THROTTLE_REDIS_URL", "")
GRAPH_THROTTLE_UNITS_PER_SECOND = float(os.environ.get("GRAPH_THROTTLE_UNITS_PER_SECOND") or 0) or None
GRAPH_THROTTLE_BURST_UNITS = float(os.environ.get("GRAPH_THROTTLE_BURST_UNITS") or 0) or None
# Scheduled syncs are incremental, with a full sync once this many hours have passed since the last one.
GRAPH_FULL_SYNC_INTERVAL_HOURS = float(os.environ.get("GRAPH_FULL_SYNC_INTERVAL_HOURS", "24"))
# Incremental syncs read the licenses of the users the delta reports; every this many minutes one also
# lists every user's licenses and sign-in activity, which the users delta does not report.
GRAPH_LICENSE_LISTING_INTERVAL_MINUTES = float(os.environ.get("GRAPH_LICENSE_LISTING_INTERVAL_MINUTES", "60"))

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "license-pools@localhost")
# Scheme, host and optional path prefix that e-mails put before links to the portal, such as
# https://licenses.example.com. Unset, it is the first host of ALLOWED_HOSTS over https (on the embedded
# default, over http on port 8000), and outside the embedded default a system check warns about the guess.
PORTAL_BASE_URL_SET = bool(os.environ.get("PORTAL_BASE_URL", "").strip())
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "").strip().rstrip("/") or fallback_base_url(
    ALLOWED_HOSTS, embedded=EMBEDDED
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

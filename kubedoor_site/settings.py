"""KubeDoor settings: the only settings module, read from the environment (DESIGN §11).

Every variable is listed in ``.env.example``. Secrets have no defaults: when
``KUBEDOOR_SECRET_KEY`` is unset a random key is generated once into ``var/secret_key``
so an embedded installation works without a key ever being committed.
"""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

import environ

from kubedoor_site.ldap_config import ldap_settings
from kubedoor_site.oidc_config import oidc_settings
from kubedoor_site.scope_config import group_scopes_parse

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("KUBEDOOR_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret_key() -> str:
    """Return the machine-local secret key, creating it (mode 0600) on first use."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env.str("KUBEDOOR_SECRET_KEY", default="") or _local_secret_key()
DEBUG = env.bool("KUBEDOOR_DEBUG", default=False)
ALLOWED_HOSTS = env.list("KUBEDOOR_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("KUBEDOOR_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "kubedoor_site.apps.KubeDoorAdminConfig",  # django.contrib.admin with KubeDoor's AdminSite
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "apps.accounts",
    "apps.control",
    "apps.metrics",
    "apps.audit",
    "apps.webhook",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "kubedoor_site.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "kubedoor_site.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into apps.accounts.logins' answer
]

ROOT_URLCONF = "kubedoor_site.urls"
WSGI_APPLICATION = "kubedoor_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "kubedoor_site" / "templates"],
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

# Databases: SQLite under var/ when DATABASE_URL is unset; PostgreSQL in production and tests.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'kubedoor.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("KUBEDOOR_DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ClickHouse for the daily-peak archive; empty means the default database holds it.
CLICKHOUSE_URL = env.str("CLICKHOUSE_URL", default="")

# --- ClickHouse archive -----------------------------------------------------------------------
# With CLICKHOUSE_URL (clickhouse://user:password@host:9000/db) the daily peaks live in ClickHouse
# through django-clickhouse-backend's connection under the "clickhouse" alias; the alias is only
# ever used by apps/metrics/clickhouse.py (raw SQL), never by models or migrations.
KUBEDOOR_PEAK_STORE = "clickhouse" if CLICKHOUSE_URL else "orm"
if CLICKHOUSE_URL:
    from apps.metrics.clickhouse_url import clickhouse_database

    DATABASES["clickhouse"] = clickhouse_database(CLICKHOUSE_URL)
    DATABASE_ROUTERS = ["apps.metrics.routers.ClickHouseRouter"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("KUBEDOOR_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "admin:login"

# --- Security defaults ------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("KUBEDOOR_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Behind a reverse proxy: trust X-Forwarded-Proto, and take the client's address from the right-most
# X-Forwarded-For entry (apps.audit.services.client_address: audit events and login lockouts).
KUBEDOOR_BEHIND_PROXY = env.bool("KUBEDOOR_BEHIND_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if KUBEDOOR_BEHIND_PROXY else None

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["kubedoor_site.permissions.RolePermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "kubedoor_site.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "kubedoor_site.exceptions.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "KubeDoor API",
    "DESCRIPTION": "Resource control plane for microservices on Kubernetes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the bundled sidecar: no asset is fetched from the internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AdmissionModeEnum": "apps.control.choices.AdmissionMode",
        "AdmissionEngineEnum": "apps.control.choices.AdmissionEngine",
    },
    # The admission endpoint is routed only by the webhook process; this hook documents it here too.
    "PREPROCESSING_HOOKS": ["apps.webhook.openapi.webhook_endpoints_add"],
    # Pinned to what spectacular derived from the API alone, so /mutate… leaves tags and ids unchanged.
    "SCHEMA_PATH_PREFIX": "/api",
}

# --- Celery -----------------------------------------------------------------------------------
# Embedded default: kombu's filesystem transport under var/, so `make run` needs no Redis.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A message taken by a worker that dies unacknowledged (acks_late) goes back to the queue after
    # this many seconds; longer than any one task (a collection chunk is a few days of queries).
    _visibility_timeout = env.int("KUBEDOOR_CELERY_VISIBILITY_TIMEOUT", default=3600)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _visibility_timeout,
        # Look for such messages every quarter of the timeout (at most every 10 s), not every 100 s.
        "unacked_restore_interval": max(1, min(10, _visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Collection spread over workers (apps/metrics/collection_chunks.py) ---------------------
# A queued collection is split into chunks of this many days, one Celery task each.
# The Celery queue of collection tasks (run and chunks); empty: the default queue every worker consumes.
KUBEDOOR_COLLECTION_QUEUE = env.str("KUBEDOOR_COLLECTION_QUEUE", default="")
KUBEDOOR_COLLECTION_CHUNK_DAYS = env.int("KUBEDOOR_COLLECTION_CHUNK_DAYS", default=1)
# How many chunks query one metrics backend (keyed by its URL) at once, over all workers (Redis semaphore).
KUBEDOOR_COLLECTION_BACKEND_SLOTS = env.int("KUBEDOOR_COLLECTION_BACKEND_SLOTS", default=2)
# A chunk's claim and its backend slot expire when its worker shows no sign of life (a query done)
# for this many seconds: the redelivered task of a dead worker then takes the chunk over.
KUBEDOOR_COLLECTION_LEASE_SECONDS = env.int("KUBEDOOR_COLLECTION_LEASE_SECONDS", default=300)
# A chunk whose backend fails is retried alone, this many times, after DELAY, 2 × DELAY, 4 × DELAY … seconds.
KUBEDOOR_COLLECTION_MAX_RETRIES = env.int("KUBEDOOR_COLLECTION_MAX_RETRIES", default=3)
KUBEDOOR_COLLECTION_RETRY_DELAY_SECONDS = env.float("KUBEDOOR_COLLECTION_RETRY_DELAY_SECONDS", default=10.0)

# --- Webhook ----------------------------------------------------------------------------------
KUBEDOOR_WEBHOOK_TLS_CERT = env.str("KUBEDOOR_WEBHOOK_TLS_CERT", default="")
KUBEDOOR_WEBHOOK_TLS_KEY = env.str("KUBEDOOR_WEBHOOK_TLS_KEY", default="")
KUBEDOOR_WEBHOOK_SERVICE = env.str("KUBEDOOR_WEBHOOK_SERVICE", default="kubedoor/kubedoor-webhook")
KUBEDOOR_WEBHOOK_URL = env.str("KUBEDOOR_WEBHOOK_URL", default="")
KUBEDOOR_WEBHOOK_CA_BUNDLE = env.str("KUBEDOOR_WEBHOOK_CA_BUNDLE", default="")
KUBEDOOR_WEBHOOK_CA_INJECT_FROM = env.str("KUBEDOOR_WEBHOOK_CA_INJECT_FROM", default="")

# --- Webhook process --------------------------------------------------------------------------
# The admission webhook runs the same code as its own process (apps/webhook/wsgi.py sets
# KUBEDOOR_PROCESS=webhook): only /mutate..., /healthz, /readyz and /metrics are routed, and no
# session, CSRF, auth or host-checking middleware runs (the API server calls it by Service name).
KUBEDOOR_PROCESS = env.str("KUBEDOOR_PROCESS", default="web")
# What a review gets while the process has never loaded control data (database down at start).
KUBEDOOR_WEBHOOK_ON_STORE_ERROR_DEFAULT = env.str("KUBEDOOR_WEBHOOK_ON_STORE_ERROR", default="allow")
# How often the webhook process checks whether the control table changed (seconds).
KUBEDOOR_WEBHOOK_SNAPSHOT_CHECK_SECONDS = env.float("KUBEDOOR_WEBHOOK_SNAPSHOT_CHECK_SECONDS", default=1.0)
if KUBEDOOR_PROCESS == "webhook":
    ROOT_URLCONF = "apps.webhook.process_urls"
    MIDDLEWARE = []

# --- Kubernetes -------------------------------------------------------------------------------
# The user names KubeDoor's own processes have in the Kubernetes API (comma-separated). The webhook
# lets their writes through unchanged: a scale carries an operator's decision, a restart carries the
# table's values. The default is the ServiceAccount deploy/ creates (kubedoor/kubedoor).
KUBEDOOR_SERVICE_ACCOUNT_USERNAMES = env.list(
    "KUBEDOOR_SERVICE_ACCOUNT_USERNAMES", default=["system:serviceaccount:kubedoor:kubedoor"]
)
KUBEDOOR_K8S_TIMEOUT_SECONDS = env.float("KUBEDOOR_K8S_TIMEOUT_SECONDS", default=10.0)
# Items per page of KubeDoor's list calls to the API server (``limit``; the rest follows ``continue``).
KUBEDOOR_K8S_LIST_PAGE_SIZE = env.int("KUBEDOOR_K8S_LIST_PAGE_SIZE", default=500)
# When the nightly drift check runs (five cron fields in KUBEDOOR_TIME_ZONE); empty = never. Beat's
# entry follows this value each time beat starts.
KUBEDOOR_DRIFT_CHECK_CRON = env.str("KUBEDOOR_DRIFT_CHECK_CRON", default="30 3 * * *")
# In-place resize: how long a resize waits for the kubelet (deferred pods after that count as
# "deferred too long"), and how often it reads the pods back meanwhile.
KUBEDOOR_RESIZE_WAIT_SECONDS = env.float("KUBEDOOR_RESIZE_WAIT_SECONDS", default=60.0)
KUBEDOOR_RESIZE_POLL_SECONDS = env.float("KUBEDOOR_RESIZE_POLL_SECONDS", default=5.0)

# --- Scoped roles: directory groups → a role on one cluster (and namespaces) ----------------------
# "team-a=operator@prod:shop,payments;team-b=viewer@staging": applied to the groups LDAP and OIDC
# logins mirror, on every login (apps.accounts.scope_services). Scopes made in the admin are kept.
KUBEDOOR_GROUP_SCOPES = group_scopes_parse(env.str("KUBEDOOR_GROUP_SCOPES", default=""))

# --- LDAP (off when AUTH_LDAP_SERVER_URI is empty) -------------------------------------------
_auth = ldap_settings(env.ENVIRON, base_backends=["django.contrib.auth.backends.ModelBackend"])
# django-axes first: a locked-out user name or address is refused before any backend checks a password.
_auth["AUTHENTICATION_BACKENDS"] = ["axes.backends.AxesStandaloneBackend", *_auth["AUTHENTICATION_BACKENDS"]]
globals().update(_auth)

# --- Login lockout (django-axes) --------------------------------------------------------------
# After this many failed logins for one user name, or from one address, further attempts are refused
# (429 with a message, on the login page and the token endpoint) for the cool-off time, or until an
# admin unlocks them (admin → Axes → Access attempts). Every login, failed or not, is audited.
AXES_ENABLED = env.bool("KUBEDOOR_LOGIN_LOCKOUT", default=True)
AXES_FAILURE_LIMIT = env.int("KUBEDOOR_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.float("KUBEDOOR_LOGIN_COOLOFF_MINUTES", default=15.0))
# Each entry locks on its own: "username" (the account), "ip_address" (the address), or both joined by "+".
AXES_LOCKOUT_PARAMETERS = [
    item.split("+") if "+" in item else item
    for item in env.list("KUBEDOOR_LOGIN_LOCKOUT_BY", default=["username", "ip_address"])
]
AXES_CLIENT_IP_CALLABLE = "apps.audit.services.client_address"
AXES_LOCKOUT_CALLABLE = "apps.accounts.logins.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# --- OpenID Connect single sign-on (off when OIDC_RP_CLIENT_ID is empty) ------------------------
globals().update(oidc_settings(env.ENVIRON, backends=globals()["AUTHENTICATION_BACKENDS"]))
# Last: authenticates nobody, gives scoped users the permissions of their scopes' highest role.
AUTHENTICATION_BACKENDS = [*globals()["AUTHENTICATION_BACKENDS"], "apps.accounts.scopes.ScopeBackend"]

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("KUBEDOOR_LOG_LEVEL", default="INFO")},
    "loggers": {"django_auth_ldap": {"level": env.str("KUBEDOOR_LDAP_LOG_LEVEL", default="WARNING")}},
}

# --- Operations and notifications -------------------------------------------------------------
# Beat re-reads the schedule at least this often (seconds); django-celery-beat's own default is 5.
CELERY_BEAT_MAX_LOOP_INTERVAL = env.int("CELERY_BEAT_MAX_LOOP_INTERVAL", default=5)
# Chat deliveries: one HTTP POST per attempt with this timeout, retried a bounded number of times.
KUBEDOOR_NOTIFY_TIMEOUT_SECONDS = env.float("KUBEDOOR_NOTIFY_TIMEOUT_SECONDS", default=5.0)
KUBEDOOR_NOTIFY_MAX_RETRIES = env.int("KUBEDOOR_NOTIFY_MAX_RETRIES", default=3)
KUBEDOOR_NOTIFY_RETRY_DELAY_SECONDS = env.float("KUBEDOOR_NOTIFY_RETRY_DELAY_SECONDS", default=10.0)
# Repeated admission denials of one Deployment within this many seconds notify once, then one summary
# ("N more denials of ns/name in the last minute") when the window closes; every denial is audited.
KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS = env.float("KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS", default=60.0)

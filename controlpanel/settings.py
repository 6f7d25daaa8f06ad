"""Settings, read from the environment.

Defaults run on a laptop: SQLite in var/, Redis on localhost. Secrets that must
survive restarts (SECRET_KEY, FIELD_ENCRYPTION_KEY) come from the environment or,
when unset, from files generated once per installation under var/ (never committed).
"""

import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import schedule
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CONTROLPANEL_VAR_DIR", BASE_DIR / "var"))


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def private_dir(path: Path) -> None:
    """Create `path` for this user only, and close one that an earlier start left open: var/
    holds the database, the installation's keys, logs and uploaded documents. (The SQLite
    files themselves are closed as they are opened: deployments/signals.py.)"""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    # Only the owner may chmod; another user's folder is left as its owner made it.
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        path.chmod(0o700)


def installation_secret(name: str) -> str:
    """The environment variable `name`, else a random value kept in var/<name>."""
    value = os.environ.get(name)
    if value:
        return value
    path = VAR_DIR / name.lower()
    if path.exists():
        return path.read_text().strip()
    private_dir(VAR_DIR)
    value = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


SECRET_KEY = installation_secret("SECRET_KEY")
# Encrypts SSH keys, passwords and generated stack secrets at rest. Kept apart from
# SECRET_KEY so that rotating sessions does not make stored secrets unreadable.
FIELD_ENCRYPTION_KEY = installation_secret("FIELD_ENCRYPTION_KEY")
# Earlier keys, still accepted for reading while `manage.py rotate_encryption_key` re-encrypts
# what they wrote (comma-separated, newest first); new values are written with the key above.
FIELD_ENCRYPTION_OLD_KEYS = envlist("FIELD_ENCRYPTION_OLD_KEYS", "")

DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
# Only trust X-Forwarded-For when a proxy in front of the panel is configured to set it.
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 0)
# Behind such a proxy, its X-Forwarded-Proto says whether the browser used HTTPS (the panel
# itself speaks plain HTTP to the proxy): addresses the panel builds, such as the single
# sign-on callback, then start with https://. Never trusted without a proxy, or any client
# could claim HTTPS.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "heroicons",
    "axes",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "deployments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the switch's cookie, else the browser's Accept-Language, else English.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "deployments.middleware.roles_read_once_middleware",
    "allauth.account.middleware.AccountMiddleware",
    "controlpanel.middleware.SessionActivityMiddleware",
    "controlpanel.middleware.NoStoreForUsersMiddleware",
    "controlpanel.middleware.LoginLockoutStatusMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Pages load scripts and styles from static/ only: no inline code, and htmx neither injects
# its indicator styles nor evaluates attributes (the htmx-config meta in base.html).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: for the empty favicon in base.html.
        "img-src": [SELF, "data:"],
        # 'self' covers the websockets (ws: and wss:) of the same host too.
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

ROOT_URLCONF = "controlpanel.urls"
ASGI_APPLICATION = "controlpanel.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
# No persistent connections: under ASGI each request may run in a new thread, and
# connections kept per thread would pile up (Django's advice for ASGI).
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    private_dir(VAR_DIR)
    # Web, worker and beat write to one file: wait for locks instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so a real Celery worker process can share the test database;
    # one per test process, so two test runs side by side do not share one.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked account or address before any password is checked.
    "controlpanel.login.ThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# Login throttling (django-axes): LOGIN_FAILURE_LIMIT failed logins lock the account, and
# apart from that the address they came from, for LOGIN_COOLOFF_MINUTES; each failure while
# locked starts the wait again.
LOGIN_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
LOGIN_COOLOFF_MINUTES = envint("LOGIN_COOLOFF_MINUTES", 15)
if LOGIN_FAILURE_LIMIT < 1 or LOGIN_COOLOFF_MINUTES < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be at least 1.")
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# The same address as the audit trail: X-Forwarded-For only behind TRUSTED_PROXY_COUNT proxies.
AXES_CLIENT_IP_CALLABLE = "deployments.audit.client_ip"
# A successful login clears nothing: it would let anyone with an account reset the count of
# their address between guesses at another account.
AXES_RESET_ON_SUCCESS = False
# The audit trail records logins already; and no banner at every start.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
# axes's middleware would replace the login page by a bare message; controlpanel.login shows
# the wait on the login form itself and controlpanel.middleware answers 429.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Accounts (django-allauth): login by username and password, then the authenticator code when
# the user turned two-factor on. Nobody signs up: a team owner invites (controlpanel.accounts).
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_LOGOUT_REDIRECT_URL = LOGOUT_REDIRECT_URL
ACCOUNT_ADAPTER = "controlpanel.accounts.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "controlpanel.accounts.SocialAccountAdapter"
ACCOUNT_FORMS = {
    "login": "controlpanel.login.AccountLoginForm",
    "reset_password": "controlpanel.accounts.MailResetPasswordForm",
}
# django-axes is the one login throttle (above): allauth's own counts of logins would refuse
# before axes counts and records the failure, and without saying how long to wait.
ACCOUNT_RATE_LIMITS = {"login": False, "login_failed": False}
# allauth's login form names its field "login"; the credentials it authenticates with name it
# "username".
AXES_USERNAME_CALLABLE = "controlpanel.login.axes_username"
# A password reset mails a code, entered in the browser that asked for it: a link would carry
# its secret in the address, which the server's access log writes down.
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = True
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "LLM stack panel"
USERSESSIONS_TRACK_ACTIVITY = True

# Password reset mails. Without EMAIL_HOST the reset page says that mail is not set up.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "webmaster@localhost")
EMAIL_TIMEOUT = 30

# Sign-in with an OpenID Connect provider, when OIDC_SERVER_URL is set. An account is linked
# by a verified e-mail address only; without OIDC_ALLOW_SIGNUP nobody new gets an account.
OIDC_SERVER_URL = os.environ.get("OIDC_SERVER_URL", "")
OIDC_ALLOW_SIGNUP = envbool("OIDC_ALLOW_SIGNUP", False)
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_PROVIDERS: dict = {"openid_connect": {"APPS": []}}
if OIDC_SERVER_URL:
    SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"].append(
        {
            "provider_id": "oidc",
            "name": os.environ.get("OIDC_NAME", "Single sign-on"),
            "client_id": os.environ.get("OIDC_CLIENT_ID", ""),
            "secret": os.environ.get("OIDC_CLIENT_SECRET", ""),
            # PKCE (S256): many providers require it, and it binds the code to this login.
            "settings": {"server_url": OIDC_SERVER_URL, "oauth_pkce_enabled": True},
        }
    )

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("CHANNELS_PREFIX", "asgi")},
    }
}
# One cache for every web process and Celery worker (Redis): what one process counts or
# remembers holds in all of them. allauth's rate limits and its record of the one-time codes
# already used (a TOTP code is refused the second time, whichever process it reaches), the
# workers' reads of a stack's containers for the pages that poll them.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "controlpanel",
    },
}

# Every live socket (logs, run progress) checks this often, in seconds, that its viewer is
# still logged in and still in the object's team, and closes when not.
LIVE_ACCESS_CHECK_SECONDS = envint("LIVE_ACCESS_CHECK_SECONDS", 5)

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker restart must not stop the pipelines under way: their state is in the database, and
# they report it there (Celery 6 would cancel them by default, each then left for the reaper).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "controlpanel")
# Redis redelivers an unacknowledged task after this long; pipelines guard against the
# duplicate with their compare-and-set claim, so it only needs to exceed a normal run.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 7200)}

# A running pipeline writes a heartbeat this often; the reaper fails runs whose
# heartbeat is older than PIPELINE_STALE_AFTER seconds.
PIPELINE_HEARTBEAT_SECONDS = envint("PIPELINE_HEARTBEAT_SECONDS", 5)
PIPELINE_STALE_AFTER = envint("PIPELINE_STALE_AFTER", 60)
# How long a worker tries again to record a step's outcome while the database does not answer.
PIPELINE_OUTCOME_RETRY_SECONDS = envint("PIPELINE_OUTCOME_RETRY_SECONDS", 300)
# Deploys: how long one image pull may take, and how long services may take to be healthy.
IMAGE_PULL_TIMEOUT = envint("IMAGE_PULL_TIMEOUT", 3600)
STACK_HEALTH_TIMEOUT = envint("STACK_HEALTH_TIMEOUT", 600)
STACK_HEALTH_POLL_SECONDS = envint("STACK_HEALTH_POLL_SECONDS", 3)
# A launch that downloads tens of GB may take long; past this the run fails with Xinference's
# last status, and the launch goes on in Xinference.
MODEL_LAUNCH_TIMEOUT = envint("MODEL_LAUNCH_TIMEOUT", 7200)
MODEL_LAUNCH_POLL_SECONDS = envint("MODEL_LAUNCH_POLL_SECONDS", 1)
# How long to wait for One API's memory cache to route a changed channel (SYNC_FREQUENCY is 10).
ONEAPI_ROUTE_TIMEOUT = envint("ONEAPI_ROUTE_TIMEOUT", 60)
# Documents for knowledge bases: uploads are streamed to this folder and wait there until
# FastGPT has them. FastGPT sets no size limit of its own (it accepts any file), so the panel
# does: DOCUMENT_UPLOAD_MAX_MB per file.
DOCUMENT_STAGING_DIR = Path(os.environ.get("DOCUMENT_STAGING_DIR", VAR_DIR / "uploads"))
DOCUMENT_UPLOAD_MAX_MB = envint("DOCUMENT_UPLOAD_MAX_MB", 1024)
# A document that failed keeps its staged copy this long, so "import again with ..." needs
# no new upload; the hourly sweep removes it after.
DOCUMENT_RETRY_HOURS = envint("DOCUMENT_RETRY_HOURS", 24)
# An invitation to a team works once, for INVITATION_DAYS after an owner made it.
INVITATION_DAYS = envint("INVITATION_DAYS", 7)
# Training is followed this often; a document whose counts stand still for
# TRAINING_STALL_SECONDS fails, with the reason read from FastGPT's log (FastGPT retries a
# failing chunk about once a minute and reports nothing through its API).
TRAINING_POLL_SECONDS = envint("TRAINING_POLL_SECONDS", 1)
TRAINING_STALL_SECONDS = envint("TRAINING_STALL_SECONDS", 600)
# Compose project names are this prefix plus the stack's id: two panels that manage the
# same server need different prefixes. Lower-case letters, digits, "-" and "_".
STACK_PROJECT_PREFIX = os.environ.get("STACK_PROJECT_PREFIX", "llmstack")
if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,30}", STACK_PROJECT_PREFIX):
    raise ImproperlyConfigured(
        "STACK_PROJECT_PREFIX must be 1-31 lower-case letters, digits, '-' or '_'."
    )
# Where people open the panel, e.g. https://panel.example.com: notifications link to its pages
# with it. Empty: they carry the pages' paths only.
PANEL_URL = os.environ.get("PANEL_URL", "").rstrip("/")
# How often every server is checked (reachable, facts), in minutes; 0 turns it off.
SERVER_CHECK_MINUTES = envint("SERVER_CHECK_MINUTES", 10)
# A small image the GPU check runs with --gpus all; the NVIDIA runtime injects nvidia-smi.
GPU_CHECK_IMAGE = os.environ.get("GPU_CHECK_IMAGE", "ubuntu:22.04")
CELERY_BEAT_SCHEDULE = {
    "reap-stale-pipeline-runs": {
        "task": "deployments.tasks.reap_stale_runs",
        "schedule": schedule(envint("PIPELINE_REAP_EVERY", 30)),
    },
    "sweep-staged-uploads": {
        "task": "deployments.tasks.sweep_staged_uploads",
        "schedule": schedule(3600),
    },
    # Each stack's daily backup, at the hour its backup settings name (off by default).
    "scheduled-stack-backups": {
        "task": "deployments.tasks.start_scheduled_backups",
        "schedule": schedule(600),
    },
}
# The idle guard looks at every server whose guard is on, and takes its next step.
CELERY_BEAT_SCHEDULE["check-idle-servers"] = {
    "task": "deployments.tasks.check_idle_servers",
    "schedule": schedule(60),
}
if SERVER_CHECK_MINUTES:
    CELERY_BEAT_SCHEDULE["check-servers"] = {
        "task": "deployments.tasks.check_all_servers",
        "schedule": schedule(SERVER_CHECK_MINUTES * 60),
    }
# Raw GPU readings older than two days become hourly ones, and those go after 30 days.
CELERY_BEAT_SCHEDULE["compact-gpu-history"] = {
    "task": "deployments.tasks.compact_gpu_history",
    "schedule": schedule(3600),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "client_errors_without_traceback": {
            "()": "controlpanel.logfilters.ClientErrorsWithoutTraceback"
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"filters": ["client_errors_without_traceback"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

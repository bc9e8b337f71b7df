"""Django settings for Yakuba: every operator-facing value is read here, through ``Env``.

docs/configuration.md lists every variable with its default; keep the two in step.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url

from yakuba.config import ConfigError, Env

env = Env()

# Nothing is ever downloaded at run time: the speech engines' libraries (faster-whisper
# through huggingface_hub) would otherwise fetch a missing model or tokenizer.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.str("YAKUBA_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The configured key, or one generated once and kept under var/ (embedded tier)."""
    configured = env.str("YAKUBA_SECRET_KEY", "")
    if configured:
        if len(configured) < 32:
            raise ConfigError("YAKUBA_SECRET_KEY", "…", "a random string of at least 32 characters")
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        key_file.chmod(0o600)
    return key_file.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("YAKUBA_DEBUG", False)
ALLOWED_HOSTS = env.list("YAKUBA_ALLOWED_HOSTS", ("127.0.0.1", "localhost", "[::1]"))
CSRF_TRUSTED_ORIGINS = env.list("YAKUBA_CSRF_TRUSTED_ORIGINS")
# Behind nginx the client address comes from X-Forwarded-For; only trust it when told to.
TRUST_X_FORWARDED_FOR = env.bool("YAKUBA_TRUST_X_FORWARDED_FOR", False)
SITE_NAME = env.str("YAKUBA_SITE_NAME", "役場ポータル")
MUNICIPALITY_NAME = env.str("YAKUBA_MUNICIPALITY_NAME", "デモ区役所")

INSTALLED_APPS = [
    # The admin, for IT administrators only (yakuba/directory/admin_site.py).
    "yakuba.directory.admin_site.YakubaAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "yakuba.directory",
    "yakuba.audit",
    "yakuba.realtime",
    "yakuba.tasks",
    "yakuba.mail",
    "yakuba.rooms",
    "yakuba.minutes",
    "yakuba.chat",
    "yakuba.web",
]

MIDDLEWARE = [
    # First, so that it counts every response, the 500s made of exceptions included.
    "yakuba.web.metrics.ResponseCounterMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "yakuba.web.security.RejectNulCharactersMiddleware",
    "yakuba.web.security.ContentSecurityPolicyMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "yakuba.lib.request_context.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "yakuba.web.language.JapaneseFirstLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "yakuba.directory.middleware.SessionPolicyMiddleware",
    "yakuba.directory.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "yakuba.urls"
ASGI_APPLICATION = "yakuba.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "yakuba.web.context.shell",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

DATABASE_URL = env.str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'yakuba.sqlite3'}")
try:
    _database: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL, conn_max_age=0))
except ValueError as exc:
    raise ConfigError(
        "DATABASE_URL", DATABASE_URL, "sqlite:///PATH or postgresql://USER@HOST:PORT/NAME"
    ) from exc
# Two test runs at once (two checkouts, a helper beside CI) must not share a database.
_test_database_name = env.str("YAKUBA_TEST_DATABASE_NAME", f"test_yakuba_{os.getpid()}")
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend with this process's writers queued in turn (yakuba/lib/sqlite).
    _database["ENGINE"] = "yakuba.lib.sqlite"
    _database["OPTIONS"] = {
        # BEGIN IMMEDIATE takes the write lock at the start of every transaction, so two
        # writers never both read and then fail to upgrade (SQLITE_BUSY mid-transaction).
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("YAKUBA_SQLITE_BUSY_TIMEOUT", 20, minimum=1),
        # WAL lets readers run beside the writer; FULL syncs the WAL on every commit,
        # so an acknowledged write survives a power cut.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
    }
    _database["TEST"] = {"NAME": str(VAR_DIR / f"{_test_database_name}.sqlite3")}
elif _database["ENGINE"] in {
    "django.db.backends.postgresql",
    "django.db.backends.postgresql_psycopg2",
}:
    _database["ENGINE"] = "django.db.backends.postgresql"
    _database["CONN_HEALTH_CHECKS"] = True
    # A pool of connections per process (psycopg_pool): opening a PostgreSQL connection
    # costs the server a process start and a few ms of CPU, on every request without one.
    # 0 turns the pool off (a pooler such as PgBouncer in front does the same job).
    _pool_size = env.int("YAKUBA_PG_POOL_SIZE", 10)
    if _pool_size:
        _database["CONN_MAX_AGE"] = 0  # the pool keeps the connections, not Django
        _database["OPTIONS"] = {
            **_database.get("OPTIONS", {}),
            "pool": {"min_size": 1, "max_size": _pool_size, "timeout": 20},
        }
    if env.bool("YAKUBA_PG_SERVER_SIDE_BINDING", False):
        # Parameters bound by the server, and a statement run 5 times on a connection
        # prepared (psycopg's default): less parsing and planning per write, measured in
        # bench/README.md.  Off by default: poolers in transaction mode (PgBouncer
        # before 1.21) cannot carry prepared statements across server connections.
        _database["OPTIONS"] = {
            **_database.get("OPTIONS", {}),
            "server_side_binding": True,
            "prepare_threshold": 5,
        }
    _database["TEST"] = {"NAME": _test_database_name}
else:
    raise ConfigError("DATABASE_URL", DATABASE_URL, "a sqlite:/// or postgresql:// URL")
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", "")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ConfigError("REDIS_URL", REDIS_URL, "a redis://HOST:PORT/DB, rediss:// or unix:// URL")
# Prefix of every Redis key and channel, so that several installations can share one Redis.
REDIS_PREFIX = env.str("YAKUBA_REDIS_PREFIX", "yakuba")

# --- Sign-in and sessions -------------------------------------------------------

AUTH_USER_MODEL = "directory.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("YAKUBA_PASSWORD_MIN_LENGTH", 10, minimum=8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_NAME = "yakuba_session"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("YAKUBA_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Idle timeout: a session unused this long ends.  Absolute timeout: every session ends
# this long after sign-in, however busy.
SESSION_IDLE_TIMEOUT_MINUTES = env.int("YAKUBA_SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_ABSOLUTE_TIMEOUT_HOURS = env.int("YAKUBA_SESSION_MAX_HOURS", 10, minimum=1)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT_HOURS * 3600
LOCKOUT_THRESHOLD = env.int("YAKUBA_LOCKOUT_THRESHOLD", 5, minimum=1)
LOCKOUT_MINUTES = env.int("YAKUBA_LOCKOUT_MINUTES", 15, minimum=1)
# Roles whose members must use a second factor (TOTP), e.g. "it_admin,auditor".
TOTP_REQUIRED_ROLES = env.list("YAKUBA_TOTP_REQUIRED_ROLES")
TOTP_ISSUER = env.str("YAKUBA_TOTP_ISSUER", "Yakuba")

AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

# LDAP / Active Directory (optional): see docs/authentication.md.
LDAP_SERVER_URI = env.str("YAKUBA_LDAP_URI", "")
if LDAP_SERVER_URI:
    AUTH_LDAP_SERVER_URI = LDAP_SERVER_URI
    AUTH_LDAP_BIND_DN = env.str("YAKUBA_LDAP_BIND_DN", "")
    AUTH_LDAP_BIND_PASSWORD = env.str("YAKUBA_LDAP_BIND_PASSWORD", "")
    AUTH_LDAP_USER_DN_TEMPLATE = env.str("YAKUBA_LDAP_USER_DN_TEMPLATE", "") or None
    AUTH_LDAP_START_TLS = env.bool("YAKUBA_LDAP_START_TLS", False)
    AUTH_LDAP_USER_ATTR_MAP = {"email": "mail", "display_name": "displayName"}
    # Imported only when LDAP is on (django_auth_ldap.config is safe in settings).
    import ldap
    from django_auth_ldap.config import LDAPSearch

    if AUTH_LDAP_USER_DN_TEMPLATE is None:
        # Search (the usual way for Active Directory): bind as YAKUBA_LDAP_BIND_DN, find
        # the person under the base by sAMAccountName, then bind as them.
        _ldap_base = env.str("YAKUBA_LDAP_USER_SEARCH_BASE", "")
        if not _ldap_base:
            raise ConfigError(
                "YAKUBA_LDAP_USER_SEARCH_BASE",
                "",
                "the DN to search for users (e.g. OU=職員,DC=ward,DC=local) when "
                "YAKUBA_LDAP_USER_DN_TEMPLATE is not set",
            )
        AUTH_LDAP_USER_SEARCH = LDAPSearch(
            _ldap_base,
            ldap.SCOPE_SUBTREE,
            env.str("YAKUBA_LDAP_USER_FILTER", "(sAMAccountName=%(user)s)"),
        )
    # AD answers searches at the domain root with referrals that cannot be followed.
    AUTH_LDAP_CONNECTION_OPTIONS = {ldap.OPT_REFERRALS: 0}
    _ldap_ca_file = env.str("YAKUBA_LDAP_CA_FILE", "")
    if _ldap_ca_file:
        AUTH_LDAP_GLOBAL_OPTIONS = {ldap.OPT_X_TLS_CACERTFILE: _ldap_ca_file}
    # Yakuba's directory is the source of truth: the directory only checks passwords.
    LDAP_CREATE_USERS = env.bool("YAKUBA_LDAP_CREATE_USERS", False)
    AUTH_LDAP_NO_NEW_USERS = not LDAP_CREATE_USERS
    AUTH_LDAP_ALWAYS_UPDATE_USER = False
    AUTHENTICATION_BACKENDS.insert(0, "yakuba.directory.ldap.YakubaLDAPBackend")

# OpenID Connect (optional): see docs/authentication.md.
OIDC_ENABLED = bool(env.str("YAKUBA_OIDC_ISSUER", ""))
if OIDC_ENABLED:
    _issuer = env.str("YAKUBA_OIDC_ISSUER", "").rstrip("/")
    OIDC_RP_CLIENT_ID = env.str("YAKUBA_OIDC_CLIENT_ID", "")
    OIDC_RP_CLIENT_SECRET = env.str("YAKUBA_OIDC_CLIENT_SECRET", "")
    OIDC_RP_SIGN_ALGO = env.choice("YAKUBA_OIDC_SIGN_ALGO", "RS256", ("RS256", "HS256", "ES256"))
    OIDC_OP_AUTHORIZATION_ENDPOINT = env.str(
        "YAKUBA_OIDC_AUTHORIZATION_ENDPOINT", f"{_issuer}/authorize"
    )
    OIDC_OP_TOKEN_ENDPOINT = env.str("YAKUBA_OIDC_TOKEN_ENDPOINT", f"{_issuer}/token")
    OIDC_OP_USER_ENDPOINT = env.str("YAKUBA_OIDC_USERINFO_ENDPOINT", f"{_issuer}/userinfo")
    OIDC_OP_JWKS_ENDPOINT = env.str("YAKUBA_OIDC_JWKS_ENDPOINT", f"{_issuer}/jwks")
    for _name in ("YAKUBA_OIDC_CLIENT_ID", "YAKUBA_OIDC_CLIENT_SECRET"):
        if not env.str(_name, ""):
            raise ConfigError(_name, "", "the value registered at the provider (required)")
    OIDC_RP_SCOPES = "openid email profile"
    # Which claim names the Yakuba user: preferred_username (matched to the username,
    # less YAKUBA_OIDC_USERNAME_DOMAIN) or email.
    OIDC_MATCH_CLAIM = env.choice(
        "YAKUBA_OIDC_MATCH_CLAIM", "preferred_username", ("preferred_username", "email")
    )
    OIDC_USERNAME_DOMAIN = env.str("YAKUBA_OIDC_USERNAME_DOMAIN", "")
    OIDC_CREATE_USER = env.bool("YAKUBA_OIDC_CREATE_USERS", False)
    OIDC_CALLBACK_CLASS = "yakuba.directory.oidc.YakubaOIDCCallbackView"
    LOGIN_REDIRECT_URL_FAILURE = "/login/?error=oidc"
    AUTHENTICATION_BACKENDS.insert(0, "yakuba.directory.oidc.YakubaOIDCBackend")
    INSTALLED_APPS.append("mozilla_django_oidc")

# --- Audit log ------------------------------------------------------------------

# Ed25519 private key (PEM, or 64 hex characters of raw seed) that signs checkpoints.
AUDIT_SIGNING_KEY = env.str("YAKUBA_AUDIT_SIGNING_KEY", "")
AUDIT_CHECKPOINT_MINUTES = env.int("YAKUBA_AUDIT_CHECKPOINT_MINUTES", 60, minimum=1)
# The sealer chains committed entries; this is the longest it waits between passes.
AUDIT_SEAL_INTERVAL_SECONDS = env.int(
    "YAKUBA_AUDIT_SEAL_INTERVAL_SECONDS", 1, minimum=1, maximum=60
)

# --- Real time -------------------------------------------------------------------

REALTIME_HEARTBEAT_SECONDS = env.int("YAKUBA_HEARTBEAT_SECONDS", 25, minimum=1)
# A client further behind than this many events is told to refetch instead of replaying.
REALTIME_MAX_REPLAY = env.int("YAKUBA_MAX_REPLAY_EVENTS", 1000, minimum=1)
REALTIME_EVENT_RETENTION_DAYS = env.int("YAKUBA_EVENT_RETENTION_DAYS", 7, minimum=1)

# --- Language, time -------------------------------------------------------------

LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", "日本語"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "yakuba" / "locale"]
TIME_ZONE = "Asia/Tokyo"
USE_I18N = True
USE_TZ = True

# --- API, health and metrics -------------------------------------------------------

# Requests per caller (user or token) per minute to /api/, per process; 0 turns it off.
API_RATE_PER_MINUTE = env.int("YAKUBA_API_RATE_PER_MINUTE", 600, minimum=0)
# Bearer token that lets Prometheus scrape /metrics from another host (else loopback only).
METRICS_TOKEN = env.str("YAKUBA_METRICS_TOKEN", "")

# --- Static files, mail -----------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# ServeStatic (WhiteNoise's ASGI-capable successor) serves static files straight from the
# app and build folders, so the embedded tier needs no collectstatic step and no web server.
SERVESTATIC_USE_FINDERS = True
# Built by `make frontend` from frontend/ (TypeScript output and assets taken from npm).
STATICFILES_DIRS = [BASE_DIR / "frontend" / "dist"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = Path(env.str("YAKUBA_MEDIA_DIR", str(VAR_DIR / "media")))

EMAIL_HOST = env.str("YAKUBA_SMTP_HOST", "127.0.0.1")
EMAIL_PORT = env.int("YAKUBA_SMTP_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env.str("YAKUBA_SMTP_USER", "")
EMAIL_HOST_PASSWORD = env.str("YAKUBA_SMTP_PASSWORD", "")
DEFAULT_FROM_EMAIL = env.str("YAKUBA_MAIL_FROM", "yakuba@localhost")
EMAIL_TIMEOUT = 30
# Mail goes out through an outbox in the database, sent by the worker (yakuba/mail).
# Off: mail is kept in the outbox and never sent (a ward without an SMTP relay).
MAIL_ENABLED = env.bool("YAKUBA_MAIL_ENABLED", True)
# The ward's own address for links in mail (no trailing slash), e.g. https://yakuba.city.example.lg.jp
SITE_URL = env.str("YAKUBA_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# Japanese font embedded in PDF reports and minutes (yakuba/lib/pdf.py); a .ttc/.otc
# collection needs the face index (0 = Noto Sans CJK JP in Debian's fonts-noto-cjk).
PDF_FONT = env.str("YAKUBA_PDF_FONT", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
PDF_FONT_INDEX = env.int("YAKUBA_PDF_FONT_INDEX", 0)
# Japanese font embedded in Word documents (yakuba/lib/docx_font.py): a Mincho-like serif
# face, as municipal documents use (0 = Noto Serif CJK JP).  Missing: the .docx names
# 游明朝 and embeds nothing (the terminal's own Mincho is used).
DOCX_FONT = env.str("YAKUBA_DOCX_FONT", "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")
DOCX_FONT_INDEX = env.int("YAKUBA_DOCX_FONT_INDEX", 0)

# --- Meeting rooms (会議室) -----------------------------------------------------------

# Check-in opens this many minutes before a booking starts.
ROOMS_CHECKIN_OPENS_MINUTES = env.int("YAKUBA_ROOMS_CHECKIN_OPENS_MINUTES", 15, maximum=120)
# A booking nobody checked in to is released this many minutes after its start.
ROOMS_RELEASE_GRACE_MINUTES = env.int(
    "YAKUBA_ROOMS_RELEASE_GRACE_MINUTES", 10, minimum=1, maximum=240
)
# Bookings longer than this many hours are never released (all-day events, exams).
ROOMS_RELEASE_MAX_HOURS = env.int("YAKUBA_ROOMS_RELEASE_MAX_HOURS", 4, minimum=1)
# Bookings made less than this many minutes before their start are never released.
ROOMS_RELEASE_MIN_LEAD_MINUTES = env.int("YAKUBA_ROOMS_RELEASE_MIN_LEAD_MINUTES", 30)
# A recurring series is cancelled after this many no-shows in a row (0: never); the
# organiser is warned one no-show before.
ROOMS_SERIES_NO_SHOW_LIMIT = env.int("YAKUBA_ROOMS_SERIES_NO_SHOW_LIMIT", 3, minimum=0)
# How far ahead people may book, in days.
ROOMS_MAX_ADVANCE_DAYS = env.int("YAKUBA_ROOMS_MAX_ADVANCE_DAYS", 180, minimum=1)
# How often the worker looks for no-shows to release (seconds); the release happens
# at most this long (plus the worker's own poll) after its deadline.
ROOMS_RELEASE_INTERVAL_SECONDS = env.int(
    "YAKUBA_ROOMS_RELEASE_INTERVAL_SECONDS", 15, minimum=1, maximum=30
)

# --- Minutes (議事録) and speech recognition ---------------------------------------------

# The engine new transcriptions use (docs/minutes.md): pocketsphinx ships an English model
# and serves the tests; for Japanese install a Vosk, faster-whisper or whisper.cpp model
# from a file and point the matching variable below at it.  Nothing is ever downloaded.
MINUTES_ASR_ENGINE = env.choice(
    "YAKUBA_ASR_ENGINE", "pocketsphinx", ("pocketsphinx", "vosk", "faster-whisper", "whisper.cpp")
)
# Language the Whisper engines are told to expect (ISO 639-1).
MINUTES_ASR_LANGUAGE = env.str("YAKUBA_ASR_LANGUAGE", "ja")
# CPU threads one engine may use (1 keeps a 2-core server answering pages while it works).
MINUTES_ASR_THREADS = env.int("YAKUBA_ASR_THREADS", 1, minimum=1, maximum=64)
# An acoustic model directory for pocketsphinx; empty: the English model in the package.
MINUTES_POCKETSPHINX_MODEL_DIR = env.str("YAKUBA_POCKETSPHINX_MODEL_DIR", "")
MINUTES_VOSK_MODEL_DIR = env.str("YAKUBA_VOSK_MODEL_DIR", "")
# A CTranslate2 Whisper model directory (model.bin, config.json, tokenizer.json, …).
MINUTES_FASTER_WHISPER_MODEL_DIR = env.str("YAKUBA_FASTER_WHISPER_MODEL_DIR", "")
MINUTES_FASTER_WHISPER_DEVICE = env.choice(
    "YAKUBA_FASTER_WHISPER_DEVICE", "cpu", ("cpu", "cuda", "auto")
)
MINUTES_FASTER_WHISPER_COMPUTE_TYPE = env.str("YAKUBA_FASTER_WHISPER_COMPUTE_TYPE", "int8")
# A whisper.cpp model file (ggml-*.bin).
MINUTES_WHISPER_CPP_MODEL = env.str("YAKUBA_WHISPER_CPP_MODEL", "")
# Uploaded recordings and their decoded audio live here.
MINUTES_MEDIA_DIR = Path(env.str("YAKUBA_MINUTES_MEDIA_DIR", str(VAR_DIR / "minutes")))
# Largest recording accepted, in megabytes (a 3-hour mp3 at 128 kbit/s is about 170 MB).
MINUTES_MAX_UPLOAD_MB = env.int("YAKUBA_MINUTES_MAX_UPLOAD_MB", 500, minimum=1)
# Voice-activity detection: webrtcvad aggressiveness (0 keeps most, 3 drops most) and the
# longest segment handed to an engine (longer speech is cut at the quietest point).
MINUTES_VAD_AGGRESSIVENESS = env.int("YAKUBA_MINUTES_VAD_AGGRESSIVENESS", 2, maximum=3)
MINUTES_MAX_SEGMENT_SECONDS = env.int("YAKUBA_MINUTES_MAX_SEGMENT_SECONDS", 20, minimum=2)
# Every request body is parsed by middleware (CSRF) before a view runs, so the cap on
# uploads sits first in the chain for the whole site: a body over the limit is refused
# before it is written to a temporary file (yakuba/minutes/uploads.py).
FILE_UPLOAD_HANDLERS = [
    "yakuba.minutes.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# A local LLM inside the ward's network that writes 要点筆記 summaries: an OpenAI-compatible
# base URL such as http://llm.internal:8080/v1.  Empty (the default): summaries are made
# offline by the extractive method only.
MINUTES_LLM_URL = env.str("YAKUBA_MINUTES_LLM_URL", "").rstrip("/")
MINUTES_LLM_MODEL = env.str("YAKUBA_MINUTES_LLM_MODEL", "")
MINUTES_LLM_API_KEY = env.str("YAKUBA_MINUTES_LLM_API_KEY", "")
MINUTES_LLM_TIMEOUT_SECONDS = env.int("YAKUBA_MINUTES_LLM_TIMEOUT_SECONDS", 120, minimum=1)

# --- Chat ---------------------------------------------------------------------------------

# Attachments and their thumbnails live here (every download is permission-checked).
CHAT_MEDIA_DIR = Path(env.str("YAKUBA_CHAT_MEDIA_DIR", str(VAR_DIR / "chat")))
CHAT_MAX_ATTACHMENT_MB = env.int("YAKUBA_CHAT_MAX_ATTACHMENT_MB", 50, minimum=1)
# A command run on every uploaded file before anyone can download it, with {path}
# replaced by the file's path: exit 0 clean, 1 infected, anything else an error (e.g.
# "clamdscan --no-summary {path}").  Empty: files are not scanned.
CHAT_SCAN_COMMAND = env.str("YAKUBA_CHAT_SCAN_COMMAND", "")
# Days messages are kept where a conversation sets nothing; 0 keeps them forever.
CHAT_RETENTION_DAYS = env.int("YAKUBA_CHAT_RETENTION_DAYS", 0, minimum=0)
# Longest message, in characters.
CHAT_MESSAGE_MAX_CHARS = env.int("YAKUBA_CHAT_MESSAGE_MAX_CHARS", 10000, minimum=100)
# New conversations with more members than this start with 既読 off.
CHAT_READ_RECEIPTS_MAX_MEMBERS = env.int("YAKUBA_CHAT_READ_RECEIPTS_MAX_MEMBERS", 100, minimum=2)
# A mention that would notify more people than this asks the sender to confirm.
CHAT_MENTION_CONFIRM_OVER = env.int("YAKUBA_CHAT_MENTION_CONFIRM_OVER", 50, minimum=1)
# Minutes after which an unread mention is e-mailed; 0 turns mention e-mail off.
CHAT_MENTION_EMAIL_DELAY_MINUTES = env.int("YAKUBA_CHAT_MENTION_EMAIL_DELAY_MINUTES", 0, minimum=0)
# Presence: minutes without input before 離席, and how often changes are sent out.
CHAT_PRESENCE_IDLE_MINUTES = env.int("YAKUBA_CHAT_PRESENCE_IDLE_MINUTES", 10, minimum=1)
CHAT_PRESENCE_BATCH_SECONDS = env.int("YAKUBA_CHAT_PRESENCE_BATCH_SECONDS", 2, minimum=1)
# Integrations: requests per minute per webhook or bot, and the largest webhook body.
CHAT_WEBHOOK_RATE_PER_MINUTE = env.int("YAKUBA_CHAT_WEBHOOK_RATE_PER_MINUTE", 60, minimum=1)
CHAT_WEBHOOK_MAX_BYTES = env.int("YAKUBA_CHAT_WEBHOOK_MAX_BYTES", 65536, minimum=1024)
CHAT_OUTGOING_WEBHOOK_TIMEOUT_SECONDS = env.int(
    "YAKUBA_CHAT_OUTGOING_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1
)

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# A failed CSRF check (often a form left open past the session) gets a Japanese page.
CSRF_FAILURE_VIEW = "yakuba.web.errors.csrf_failure"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {
        "handlers": ["console"],
        "level": env.choice("YAKUBA_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
    },
}

"""Settings of a Verdigris server, read from the environment (prefix ``VERDIGRIS_``) and the CLI.

Every option is documented in ``docs/configuration.md``; keep the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERDIGRIS_", extra="ignore")

    # Where the embedded database, media and outbox live.
    data_dir: Path = Path("./var")
    # SQLAlchemy URL; empty means SQLite (WAL) at ``{data_dir}/verdigris.sqlite3``.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 7700
    # The address clients use to reach this server (used in urlFile/downloadUrl and printed hints).
    public_url: str = ""
    # Where clients fetch and upload files (urlFile/downloadUrl links, the SDKs' `media` URL): a separate
    # host, a proxy or a CDN in front of this server's /media paths. Empty means public_url.
    public_media_url: str = ""
    # HTTPS (T-26): the server terminates TLS itself when both files are given (PEM); otherwise run it
    # behind a TLS proxy, whose X-Forwarded-Proto/-For headers are trusted from these addresses
    # (comma-separated, "*" for any).
    tls_certfile: str = ""
    tls_keyfile: str = ""
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: str = "info"
    log_format: str = Field(default="console", pattern="^(console|json)$")

    # Outgoing queue pacing. GREEN-API documents 500 ms as the minimum gap between two sends of an
    # instance; tests, benchmarks and private sandboxes may lower it to 0.
    send_delay_min_ms: int = Field(default=500, ge=0)
    send_delay_default_ms: int = Field(default=500, ge=0)
    send_delay_max_ms: int = 600_000
    # Gap enforced between two file messages of one instance (GREEN-API: 5 s).
    file_send_gap_ms: int = Field(default=5_000, ge=0)
    # Queued messages and notifications live this long.
    retention_seconds: int = 24 * 3600

    # receiveNotification long-poll bounds in seconds (GREEN-API: default 5, range 5..60).
    receive_timeout_default: int = 5
    receive_timeout_min: int = 5
    receive_timeout_max: int = 60
    # On SIGTERM, requests in flight (long-polls included) get this long to finish; then the
    # connections still open (an idle keep-alive, a half-done TLS handshake) are closed.
    shutdown_grace_seconds: int = Field(default=10, ge=0)

    # Webhook delivery (docs/webhooks.md). Each attempt waits this long for the receiver's answer.
    webhook_enabled: bool = True
    # On PostgreSQL, tell the other server processes on the same database about new notifications
    # (LISTEN/NOTIFY), so long-polls and the webhook dispatcher wake at once wherever they run.
    cluster_notify: bool = True
    # On PostgreSQL, read the change log before each wire and webhook-API request, so a change
    # made through another process (a rotated token, a blocked account, settings) holds at once
    # (docs/scaling.md). Switch off only when exactly one process uses the database.
    cluster_sync: bool = True
    # Work owned by leases (docs/scaling.md): instances are spread over this many partitions, each
    # leased by one worker process for this long (renewed every third of it). The partition count
    # must be the same in every process of one database and at least the number of workers.
    work_partitions: int = Field(default=64, ge=1, le=4096)
    work_lease_seconds: float = Field(default=10.0, ge=1)
    # What this process does (docs/scaling.md): "all" (the default), "api" (accepts and answers;
    # sends, webhook pushes and background sweeps are left to workers) or "worker" (sends, pushes
    # webhooks and runs the sweeps; answers only /health and /metrics). api and worker need
    # PostgreSQL, where several processes share the store.
    role: str = Field(default="all", pattern="^(all|api|worker)$")
    webhook_timeout_seconds: float = Field(default=180.0, gt=0)
    # How many webhook POSTs may be in flight at once (over all instances).
    webhook_concurrency: int = Field(default=64, ge=1)
    # "fixed": wait webhook_retry_delay_seconds after every failure (GREEN-API: 60 s).
    # "exponential": webhook_backoff_initial_seconds * multiplier^(attempt-1), capped, with jitter.
    webhook_retry_policy: str = Field(default="fixed", pattern="^(fixed|exponential)$")
    webhook_retry_delay_seconds: float = Field(default=60.0, ge=0)
    webhook_backoff_initial_seconds: float = Field(default=5.0, ge=0)
    webhook_backoff_multiplier: float = Field(default=2.0, ge=1)
    webhook_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    # Fraction of an exponential delay taken off at random (0 = none, 1 = "full jitter").
    webhook_backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    # Dead letters (notifications whose retention ran out) are kept this long.
    webhook_dead_letter_seconds: int = Field(default=7 * 24 * 3600, ge=0)

    # QR codes rotate this often, as on WhatsApp.
    qr_rotate_seconds: int = 20
    # Pairing codes stay valid this long (GREEN-API: about 2.5 minutes).
    pairing_code_seconds: int = 150
    # /metrics names at most this many instances per per-instance gauge (the worst webhook lags and
    # the deepest outgoing queues); everything else is totalled by instance state.
    metrics_top_instances: int = Field(default=10, ge=0, le=1000)
    # How long a reboot keeps an instance in ``starting``: long enough for a client that polls
    # getStateInstance once a second (as GREEN-API's examples do) to see it at least twice.
    reboot_seconds: float = Field(default=3.0, ge=0, le=300)

    # Media files (uploads, files of messages). GREEN-API documents 100 MB per file and links that
    # stay valid about 15 days.
    media_max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    media_link_seconds: int = Field(default=15 * 24 * 3600, ge=1)
    # Where files are kept: "local" (a folder, media_dir) or "s3" (an S3-compatible object store
    # that every server process on every machine shares; docs/scaling.md).
    media_store: Literal["local", "s3"] = "local"
    # The local folder; empty means ``{data_dir}/media``.
    media_dir: str = ""
    # The object store: bucket (must exist), endpoint (empty: AWS; set for MinIO, Ceph, R2, ...),
    # region, a key prefix to share a bucket, and credentials (empty: boto3's own chain, i.e. the
    # AWS_* variables, ~/.aws or the machine's role).
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_prefix: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    # sendFileByUrl: how long fetching a remote file may take in total.
    media_fetch_timeout_seconds: float = Field(default=60.0, gt=0)
    # sendFileByUrl may fetch from loopback, private and link-local addresses (off: only public hosts,
    # so licensees cannot make the server read its own network).
    media_fetch_allow_private: bool = False
    # Webhooks and file fetches (every outbound request a tenant can aim) may go to loopback,
    # private, link-local and reserved addresses (docs/security.md). Off: public hosts only.
    outbound_allow_private: bool = False

    # A ClamAV daemon that scans every stored file (uploads, fetched URLs, sandbox phones' files):
    # "host:port" or "unix:/path/clamd.sock"; empty = no scanning. Infected files are refused; while
    # the daemon is unreachable, files are refused too (503 on the wire).
    clamav_address: str = ""
    # How long one scan may take: this many seconds plus one per megabyte of the file.
    clamav_timeout_seconds: float = Field(default=60.0, gt=0)

    # The sandbox network and its control API.
    sandbox_enabled: bool = True
    sandbox_api_enabled: bool = True
    # Fixed credentials for the sandbox control API; empty means one is generated per data dir.
    sandbox_token: str = ""
    # Lets the sandbox control API move this server's clock forward (POST /sandbox/clock), to test
    # date-dependent behaviour (license starts, trials, expiry). Never switch it on in production.
    sandbox_clock: bool = False

    # The WhatsApp Cloud API channel (docs/whatsapp-cloud.md): instances connected with Meta
    # credentials send through the Graph API at this address and version, and receive through the
    # webhook /channels/whatsapp-cloud/webhook. Each Graph API call may take this long.
    cloud_enabled: bool = True
    cloud_graph_url: str = "https://graph.facebook.com"
    cloud_api_version: str = Field(default="v23.0", pattern=r"^v[0-9]{1,3}\.[0-9]{1,3}$")
    cloud_timeout_seconds: float = Field(default=30.0, gt=0, le=60)
    # The WhatsApp Web channel (docs/whatsapp-web.md): instances linked to an ordinary WhatsApp
    # number as a linked device, through a gateway process (`verdigris wa-gateway`, needs the
    # whatsapp-web extra). Off by default. The server reaches the gateway on a Unix socket with a
    # shared secret file (defaults: {data_dir}/wa-gateway.sock and .secret, both 0600); with
    # ``whatsapp_web_gateway`` on, the server starts the gateway itself and restarts it when it dies
    # (off: the operator runs it, or a test plays it). Each gateway request may take this long.
    whatsapp_web_enabled: bool = False
    whatsapp_web_gateway: bool = True
    whatsapp_web_socket: str = ""
    whatsapp_web_secret_file: str = ""
    whatsapp_web_store_dir: str = ""
    whatsapp_web_timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    # checkWhatsapp through a linked device, per instance and hour (bulk lookups get numbers banned)
    whatsapp_web_checks_per_hour: int = Field(default=30, ge=0, le=10_000)
    # Where the gateway keeps its whatsmeow session stores: SQLite files in the store dir, or a
    # schema per session in the server's PostgreSQL database (only when the server runs on it).
    whatsapp_web_session_store: Literal["sqlite", "postgres"] = "sqlite"
    # History sync after linking: how far back, and how many messages per chat, go into the journal.
    whatsapp_web_history_days: int = Field(default=7, ge=0, le=365)
    whatsapp_web_history_messages: int = Field(default=50, ge=0, le=1_000)
    # sessions one gateway process runs at most (each holds threads and memory: docs/performance.md)
    whatsapp_web_max_sessions: int = Field(default=100, ge=1, le=10_000)
    # More channels, beside the built-in ones: comma-separated import paths ``module:Class`` of
    # channels.base.Channel implementations (constructed with the Core; docs/architecture.md).
    channels: str = ""

    # Wire API rate limits per instance and method (GREEN-API spec section 5; docs/rate-limits.md).
    # ``VERDIGRIS_RATE_LIMITS=off`` switches them off; the multiplier scales every limit; the
    # overrides are a JSON object of method name → requests per second (0 = unlimited).
    rate_limits: bool = True
    rate_limit_multiplier: float = Field(default=1.0, gt=0)
    rate_limit_default_rps: float = Field(default=10.0, ge=0)
    rate_limit_burst_seconds: float = Field(default=1.0, gt=0)
    rate_limit_overrides: dict[str, float] = Field(default_factory=dict)
    rate_limit_max_keys: int = Field(default=200_000, ge=1000)
    # On PostgreSQL, keep the limits in the store so that they hold in total across every server
    # process (docs/scaling.md); off: each process limits alone (N processes allow N times the rate).
    rate_limit_shared: bool = True

    # Create the demo workspace on an empty data dir.
    demo: bool = True

    # --- accounts and the personal area (console) ---
    # Outgoing mail. Empty smtp_host: mails are written to {data_dir}/outbox (listed in the console).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    # "none", "starttls" or "tls" (implicit TLS, usually port 465).
    smtp_security: str = Field(default="none", pattern="^(none|starttls|tls)$")
    mail_from: str = "Verdigris <noreply@verdigris.invalid>"
    # A development convenience of the embedded default: with no SMTP server and the server bound to
    # a loopback address, /console/mailbox shows the outbox's mails to an address (the sign-up mail
    # of a new user, say). Off whenever smtp_host is set or the server listens on other addresses.
    dev_mailbox: bool = True
    # SMS provider plug-in "package.module:ClassName"; empty writes SMS to the outbox.
    sms_transport: str = ""
    # Password policy, enforced wherever a password is set.
    password_min_length: int = Field(default=10, ge=6)
    # Comma-separated extra passwords to refuse (a built-in list of common ones always applies).
    password_blocklist: str = ""
    # Smallest zxcvbn score (0-4) a new password needs; 3 means "safely unguessable" (about 10^8
    # guesses or more). zxcvbn ships lists of common passwords, words and names. 0 switches it off.
    password_min_strength: int = Field(default=3, ge=0, le=4)
    # A file of refused passwords, one per line (e.g. a breached-password list); empty: none.
    password_blocklist_file: str = ""
    # Comma-separated usernames nobody may register or rename to (plus the built-in ones).
    reserved_usernames: str = ""
    # Console sessions end after this many hours (idle or not).
    session_hours: int = Field(default=24 * 7, ge=1)
    # "auto": Secure cookies when the request came over https; "always" / "never" override.
    cookie_secure: str = Field(default="auto", pattern="^(auto|always|never)$")
    # Login throttling: this many failures per username or per address within the window lock it.
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # A closed account is blocked at once; its data is deleted after this grace period.
    account_delete_grace_seconds: int = Field(default=30 * 86400, ge=0)
    # Versions of the texts users accept at registration (recorded with each consent).
    agreement_version: str = "1"
    privacy_version: str = "1"

    # The customer database and campaigns (docs/customers.md). Replies that withdraw consent
    # (compared without case and trailing '.'/'!'), the line every campaign message ends with, and
    # the smallest pause between two recipients of a campaign.
    customers_optout_words: str = "STOP,UNSUBSCRIBE,STOPALL,CANCEL,END,QUIT,СТОП,ОТПИСАТЬСЯ"
    customers_optout_footer: str = "Reply STOP to unsubscribe."
    customers_min_interval_seconds: int = Field(default=1, ge=1)

    # Licensing and billing (docs/licensing.md).
    # The operator's time zone: license days, "the day after conclusion", monthly quota periods.
    operator_timezone: str = "UTC"
    # The operator's requisites (T-27), printed on invoices and the public tariff list.
    operator_legal_name: str = "Verdigris operator"
    operator_registration_number: str = ""
    operator_tax_id: str = ""
    operator_address: str = ""
    operator_bank_details: str = ""
    operator_email: str = ""
    # What instances without any license may do: "open" (unlimited; the default, so the demo and
    # `verdigris instances create` keep working), "deny" (expired-account error), or the code of a
    # free/trial tariff assigned on first use to instances created after the policy was set.
    licensing_unlicensed: str = "open"
    # Metering: in-memory call counters are written to the database this often (seconds).
    licensing_flush_seconds: float = Field(default=5.0, gt=0)
    # Expiry reminders and the trial/expiry sweep.
    licensing_sweep_seconds: float = Field(default=300.0, gt=0)
    licensing_reminder_days: str = "7,1"
    # The personal area address printed in quota errors (default {public_url}/console).
    console_url: str = ""
    # HMAC-SHA256 secret of the payment-provider callback; empty disables the callback.
    payment_callback_secret: str = ""
    payment_callback_tolerance_seconds: int = 300

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'verdigris.sqlite3').resolve()}"

    def resolved_media_dir(self) -> Path:
        return Path(self.media_dir) if self.media_dir else self.data_dir / "media"

    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        scheme = "https" if self.tls_certfile else "http"
        return f"{scheme}://{host}:{self.port}"

    def resolved_public_media_url(self) -> str:
        return self.public_media_url.rstrip("/") if self.public_media_url else self.resolved_public_url()

    def clamp_send_delay(self, value: int) -> int:
        return max(self.send_delay_min_ms, min(self.send_delay_max_ms, value))

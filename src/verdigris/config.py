"""Settings of a Verdigris server, read from the environment (prefix ``VERDIGRIS_``) and the CLI.

Every option is documented in ``docs/configuration.md``; keep the two in step.
"""

from __future__ import annotations

from pathlib import Path

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

    # QR codes rotate this often, as on WhatsApp.
    qr_rotate_seconds: int = 20
    # Pairing codes stay valid this long (GREEN-API: about 2.5 minutes).
    pairing_code_seconds: int = 150
    # How long a reboot keeps an instance in ``starting``.
    reboot_seconds: float = 1.0

    # The sandbox network and its control API.
    sandbox_enabled: bool = True
    sandbox_api_enabled: bool = True
    # Fixed credentials for the sandbox control API; empty means one is generated per data dir.
    sandbox_token: str = ""

    # Create the demo workspace on an empty data dir.
    demo: bool = True

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

    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def clamp_send_delay(self, value: int) -> int:
        return max(self.send_delay_min_ms, min(self.send_delay_max_ms, value))

"""Server settings: one object, read from flags and ``WCMS_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every server setting. Each can be given as ``WCMS_<NAME>``; secrets also as
    ``WCMS_<NAME>_FILE`` naming a file that holds the value."""

    model_config = SettingsConfigDict(env_prefix="WCMS_", extra="ignore", strict=False)

    host: str = Field(default="127.0.0.1", description="Address to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on")
    data_dir: Path = Field(default=Path("wcms-data"), description="Directory for SQLite and keys")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is SQLite in data_dir "
        "(postgresql+asyncpg://user@host/db for PostgreSQL)",
    )
    admin_password: SecretStr | None = Field(
        default=None, description="Password for user 'admin' created on first start"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that seals secrets in command payloads; default: generated "
        "once into data_dir/secret.key",
    )
    heartbeat_interval: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds between agent heartbeats"
    )
    offline_grace: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Seconds a dropped connection may take to come back before the "
        "machine is marked offline",
    )
    heartbeat_timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds without any message from an agent before it is marked "
        "offline; default 3 heartbeat intervals",
    )
    poll_timeout: float = Field(
        default=25.0, gt=0, le=300, description="Seconds an agent's long-poll waits"
    )
    max_output_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Stored stdout/stderr per run, in bytes"
    )
    max_request_bytes: int = Field(
        default=1024 * 1024, ge=4096, description="Largest request body accepted, in bytes"
    )
    max_upload_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=4096,
        description="Largest file accepted: documents to print, screenshots, in bytes",
    )
    run_timeout_slack: float = Field(
        default=60.0,
        ge=0,
        description="Extra seconds, beyond a run's timeout counted from its start, before "
        "a run whose agent sends no result is timed out",
    )
    delivery_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a delivered run waits for its agent to acknowledge it (report "
        "it running) before it goes back to the queue to be offered again",
    )
    alert_send_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds one attempt to send an alert message (a webhook call, an SMTP "
        "session) may take before it counts as failed and is retried",
    )
    alert_retry_base: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="Seconds before an alert message that failed is tried again, doubled "
        "after each failure (with random jitter) up to alert_retry_cap",
    )
    alert_retry_cap: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="Longest wait in seconds between two attempts at an alert message",
    )
    alert_lease: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Seconds a server replica holds the alert messages it is sending; a "
        "replica that dies mid-send leaves them to another after this long",
    )
    alert_tick_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds between two evaluations of the alert rules at most (a "
        "presence or program change starts one at once)",
    )
    alert_flap_count: int = Field(
        default=5,
        ge=2,
        le=100,
        description="Times a subject must go to firing within alert_flap_window_s to be "
        "flapping: one notice, then quiet until it is stable",
    )
    alert_flap_window_s: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="Seconds in which alert_flap_count firings make a subject flapping; "
        "it is stable again after a window without one",
    )
    demo: bool = Field(default=False, description="Demo mode: relaxed defaults for a try-out")
    log_level: str = Field(default="info", description="debug, info, warning or error")

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        for name in ("admin_password", "secret_key", "database_url"):
            path = os.environ.get(f"WCMS_{name.upper()}_FILE")
            if path and getattr(self, name) is None:
                value = Path(path).read_text(encoding="utf-8").strip()
                setattr(self, name, SecretStr(value) if name != "database_url" else value)
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'wcms.db').resolve()}"

    @property
    def effective_heartbeat_timeout(self) -> float:
        return self.heartbeat_timeout or self.heartbeat_interval * 3

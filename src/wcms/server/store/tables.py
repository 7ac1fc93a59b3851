"""The database schema, as SQLAlchemy Core tables.

Core, not ORM: the hot paths (heartbeats, command fan-out) write in batches, and rows are
plain data handed to the services.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite has no 64-bit autoincrement type; BIGINT there would not alias the rowid.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


machines = Table(
    "machines",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("hostname", String(255), nullable=False, index=True),
    Column("room", String(128), index=True),
    Column("seat", String(64)),
    Column("os", String(255), nullable=False, default=""),
    Column("agent_version", String(64), nullable=False, default=""),
    Column("ip", String(64)),
    Column("inventory", JSON),
    Column("status", String(16), nullable=False, default="offline"),
    Column("status_reason", String(64)),
    Column("status_changed_at", UTCDateTime),
    Column("last_seen_at", UTCDateTime),
    Column("transport", String(8)),
    Column("conflict", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

machine_tags = Table(
    "machine_tags",
    metadata,
    Column(
        "machine_id", String(128), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("tag", String(64), primary_key=True),
    Index("ix_machine_tags_tag", "tag"),
)

machine_status = Table(
    "machine_status",
    metadata,
    Column(
        "machine_id", String(128), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("report", JSON, nullable=False),
)

status_history = Table(
    "status_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("machine_id", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("cpu_percent", Float, nullable=False),
    Column("ram_used", BigInteger, nullable=False),
    Column("ram_percent", Float, nullable=False),
    Column("disks", JSON),
    Column("users", JSON),
    Column("uptime_s", Float),
    Column("process_count", Integer),
    Index("ix_status_history_machine_at", "machine_id", "at"),
)

presence_events = Table(
    "presence_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("machine_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_presence_events_machine_at", "machine_id", "at"),
)

enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_hash", String(128), nullable=False),
    Column("uses_allowed", Integer, nullable=False),
    Column("uses_count", Integer, nullable=False, default=0),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128)),
    Column("note", String(200)),
    Column("revoked_at", UTCDateTime),
    Column("room", String(128)),
)

rooms = Table(
    "rooms",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("rows", Integer, nullable=False),
    Column("cols", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

agent_credentials = Table(
    "agent_credentials",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "machine_id",
        String(128),
        ForeignKey("machines.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("secret_hash", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("revoke_reason", String(64)),
)

commands = Table(
    "commands",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("selector", String(512), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("sealed_secrets", Text),
    Column("priority", Integer, nullable=False, default=0),
    Column("timeout_s", Float, nullable=False),
    Column("max_retries", Integer, nullable=False, default=0),
    # Safe to run twice: a run its agent was interrupted in is retried too.
    Column("idempotent", Boolean, nullable=False, default=False),
    Column("expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("created_by", String(128)),
)

command_runs = Table(
    "command_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "command_id", Id, ForeignKey("commands.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("machine_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("priority", Integer, nullable=False, default=0),
    Column("expires_at", UTCDateTime),
    Column("deadline_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    # 64 bits: Windows exit codes are unsigned 32-bit (0xC0000005).
    Column("exit_code", BigInteger),
    Column("stdout", Text),
    Column("stderr", Text),
    Column("stdout_truncated", Boolean, nullable=False, default=False),
    Column("stderr_truncated", Boolean, nullable=False, default=False),
    Column("duration_ms", Integer),
    Column("error", Text),
    # The action's structured result (a file id, a process list...).
    Column("result_data", JSON),
    # Live progress of a running run; its output so far is in stdout/stderr.
    Column("progress", Float),
    Column("progress_note", String(500)),
    # The online machine that carries out a wake run for its (sleeping) machine.
    Column("relay_id", String(128)),
    Index("ix_command_runs_machine_state", "machine_id", "state"),
    Index("ix_command_runs_state", "state"),
)

command_events = Table(
    "command_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("command_runs.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("detail", Text),
    Index("ix_command_events_run", "run_id", "at"),
)

files = Table(
    "files",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("content_type", String(127), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("machine_id", String(128)),
    Column("run_id", Id),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128)),
    Index("ix_files_kind_created", "kind", "created_at"),
    Index("ix_files_machine", "machine_id"),
)

action_policies = Table(
    "action_policies",
    metadata,
    # "machine:ID" or "room:NAME"
    Column("scope", String(160), primary_key=True),
    Column("disabled", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128)),
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False, default="admin"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
    Column("disabled", Boolean, nullable=False, default=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(255)),
    Column("detail", JSON),
    Column("ip", String(64)),
)

programs = Table(
    "programs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "machine_id", String(128), ForeignKey("machines.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(64), nullable=False),
    Column("preset", String(16), nullable=False),
    # The agent's ProgramSpec without its name, desired state, restart request and
    # secrets (the probe URL's password is *** here): those have columns of their own.
    Column("spec", JSON, nullable=False),
    # secret_env values and a probe URL holding a password, sealed (crypto.Sealer).
    Column("sealed_secrets", Text),
    Column("desired", String(16), nullable=False),
    Column("restart_seq", BigInteger, nullable=False, default=0),
    # The machine's set revision at this program's last change (pending until applied).
    Column("revision", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("created_by", String(128)),
    # What the agent last reported.
    Column("state", String(16), nullable=False, default="stopped"),
    Column("pid", Integer),
    Column("started_at", UTCDateTime),
    Column("restarts", Integer, nullable=False, default=0),
    Column("last_exit", JSON),
    Column("players", Integer),
    Column("cpu_percent", Float),
    Column("rss_bytes", BigInteger),
    Column("status", JSON),
    Column("reported_at", UTCDateTime),
    # It crashed, hung or loops: its next start that reaches running is a recovery.
    Column("troubled", Boolean, nullable=False, default=False),
    Index("uq_programs_machine_name", "machine_id", "name", unique=True),
)

program_sets = Table(
    "program_sets",
    metadata,
    Column(
        "machine_id", String(128), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True
    ),
    # Raised in the transaction of every change to the machine's programs.
    Column("revision", BigInteger, nullable=False),
    # The revision the agent last said it applies, and the highest event seq stored.
    Column("applied_revision", BigInteger),
    Column("acked_seq", BigInteger, nullable=False, default=0),
    Column("reported_at", UTCDateTime),
)

program_events = Table(
    "program_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("machine_id", String(128), nullable=False),
    Column("name", String(64), nullable=False),
    # The agent's number of the change: a re-sent change is stored once.
    Column("seq", BigInteger, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("detail", Text),
    Column("exit", JSON),
    Index("uq_program_events_machine_seq", "machine_id", "seq", unique=True),
    Index("ix_program_events_machine_name", "machine_id", "name", "id"),
)

# One row per running program every half heartbeat interval at most; kept whole (no
# retention nor rollups yet).
program_samples = Table(
    "program_samples",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("machine_id", String(128), nullable=False),
    Column("name", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("cpu_percent", Float),
    Column("rss_bytes", BigInteger),
    Column("players", Integer),
    Index("ix_program_samples_machine_name_at", "machine_id", "name", "at"),
)

# --- alerts: channels, rules, their state per subject, incidents, the outbox -------------

alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    # The URL is a secret (a Discord or Slack webhook URL is its own credential, an SMTP
    # URL holds a password): sealed, and shown with its secret parts as ***.
    Column("sealed_url", Text, nullable=False),
    Column("shown_url", String(2048), nullable=False),
    # The generic webhook's HMAC key, sealed.
    Column("sealed_secret", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("created_by", String(128)),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("selector", String(512), nullable=False),
    Column("for_s", Float, nullable=False, default=0.0),
    Column("severity", String(16), nullable=False),
    # Free-form: the kind's own settings (metric and threshold, include_shutdown).
    Column("params", JSON, nullable=False),
    Column("group_wait_s", Float, nullable=False),
    Column("group_interval_s", Float, nullable=False),
    Column("repeat_s", Float, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("created_by", String(128)),
)

alert_rule_channels = Table(
    "alert_rule_channels",
    metadata,
    Column("rule_id", Id, ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "channel_id", Id, ForeignKey("alert_channels.id", ondelete="RESTRICT"), primary_key=True
    ),
)

# One incident: a rule's subjects of one group (a room) in trouble together; what the
# API calls an alert and a message speaks of.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rule_id", Id, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    Column("group_key", String(128), nullable=False),
    Column("state", String(16), nullable=False),  # pending | firing | resolved
    # Every subject that has been part of it, in the order they joined.
    Column("subjects", JSON, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("started_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("acked_at", UTCDateTime),
    Column("acked_by", String(128)),
    # Grouping: when the group next tells its channels, and what it told them last
    # (free-form: the firing and resolved subjects of the last message).
    Column("next_notify_at", UTCDateTime),
    Column("last_notified_at", UTCDateTime),
    Column("notified", JSON),
    Index("ix_alerts_rule_group_state", "rule_id", "group_key", "state"),
    Index("ix_alerts_state_next", "state", "next_notify_at"),
)

# A rule's state for one subject (a machine, or MACHINE/PROGRAM): ok → pending → firing
# → ok (resolved), kept so that a restart neither forgets nor repeats an alert.
alert_subjects = Table(
    "alert_subjects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rule_id", Id, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("group_key", String(128), nullable=False),
    Column("state", String(16), nullable=False),  # ok | pending | firing
    Column("since", UTCDateTime, nullable=False),
    Column("alert_id", Id, ForeignKey("alerts.id", ondelete="SET NULL")),
    Column("summary", Text, nullable=False, default=""),
    # Free-form: the times it went bad or good lately, to tell flapping.
    Column("flips", JSON, nullable=False),
    Column("flapping", Boolean, nullable=False, default=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("uq_alert_subjects_rule_subject", "rule_id", "subject", unique=True),
)

alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("selector", String(512), nullable=False),
    Column("rule_id", Id, ForeignKey("alert_rules.id", ondelete="CASCADE")),
    Column("comment", String(500), nullable=False, default=""),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128)),
)

maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("selector", String(512), nullable=False),
    # Recurring: on these days (mon…sun), from start to end local time (an end at or
    # before the start runs into the next day). Once: from starts_at to ends_at.
    Column("days", JSON),
    Column("start_time", String(5)),
    Column("end_time", String(5)),
    Column("timezone", String(64), nullable=False),
    Column("starts_at", UTCDateTime),
    Column("ends_at", UTCDateTime),
    # "Left on overnight": machines still online when the window opens, told once.
    Column("report_left_on", Boolean, nullable=False, default=False),
    Column("channels", JSON, nullable=False),  # channel ids for that report
    Column("last_report_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128)),
)

# The outbox: every message to a channel, delivered by whichever replica claims it.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),  # also the X-WCMS-Delivery header
    Column("channel_id", Id, ForeignKey("alert_channels.id", ondelete="CASCADE"), nullable=False),
    Column("alert_id", Id, ForeignKey("alerts.id", ondelete="SET NULL")),
    Column("kind", String(16), nullable=False),  # firing | resolved | flapping | digest | test
    # The AlertMessage (wcms.protocol.alerts), as JSON.
    Column("message", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # queued | sending | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(64)),
    Column("claimed_until", UTCDateTime),
    Column("deadline", UTCDateTime, nullable=False),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Index("ix_deliveries_state_next", "state", "next_attempt_at"),
    Index("ix_deliveries_created", "created_at"),
    Index("ix_deliveries_alert", "alert_id"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        String(36),
        ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer),
    Column("outcome", String(16), nullable=False),  # delivered | retry | rate_limited | dead
    Column("error", Text),
)

# A named lease that one replica holds at a time (the alert evaluator), claimed and
# renewed by conditional updates.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

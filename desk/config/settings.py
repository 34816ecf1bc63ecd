"""TOML configuration -> validated, typed settings.

Operators script against these key names, so they are part of the interface.
Unknown keys are refused (a misspelt setting silently ignored is worse than a
refusal), and every error names the key that is wrong.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from desk.config.routing import DEFAULT_RULES, Rule, validate_order
from desk.config.sla import SlaSection
from desk.config.urgent_phrases import DEFAULT_URGENT_PHRASES

DEFAULT_CONFIG_PATH = Path("config/desk.toml")

DEFAULT_RECOMMENDATIONS: list[dict[str, Any]] = [
    {"phrases": ["hacked", "malware", "spam", "security", "password"],
     "tip": "Turn on two-factor authentication for every admin account; it stops most "
            "break-ins before they start."},
    {"phrases": ["down", "500", "error", "outage", "not loading", "slow"],
     "tip": "Uptime monitoring tells us about an outage before your customers do; ask us to "
            "add it if your plan does not include it yet."},
    {"phrases": ["plugin", "update", "wordpress", "theme"],
     "tip": "Keeping WordPress core and plugins up to date closes most security holes; a "
            "monthly maintenance window keeps that painless."},
    {"phrases": ["backup", "restore", "lost", "deleted"],
     "tip": "Daily off-site backups mean anything lost can be restored within hours."},
    {"phrases": ["email", "mail", "newsletter"],
     "tip": "SPF and DKIM records on your domain keep your emails out of spam folders."},
]


class ConfigError(Exception):
    """A configuration problem, phrased for the admin who has to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret(value: str | None, env_name: str | None, where: str) -> str | None:
    if env_name:
        if env_name not in os.environ:
            raise ValueError(f"{where}.password_env names ${env_name}, which is not set")
        return os.environ[env_name]
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class DeskSection(_Section):
    address: str
    name: str = "Support"
    timezone: str = "UTC"
    database_url: str = "sqlite:///var/desk.db"
    # SQLite only: how long a writer waits for a lock before the message is deferred.
    busy_timeout_seconds: float = Field(default=30.0, gt=0)
    secret: str = Field(min_length=16)
    # Where tickets with no known client go: an account manager's address.
    triage: str | None = None

    @field_validator("address", "triage")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        local, _, domain = value.rpartition("@")
        if not local or "." not in domain:
            raise ValueError(f"{value!r} is not an email address")
        return value

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]


class MailboxSection(_Section):
    source: Literal["imap", "maildir"] = "maildir"
    # imap
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: bool = True
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    folder: str = "INBOX"
    processed_folder: str | None = None
    poll_seconds: float = Field(default=60.0, gt=0)
    idle: bool = True
    # maildir
    path: str | None = None

    @model_validator(mode="after")
    def _by_source(self) -> MailboxSection:
        if self.source == "imap":
            missing = [k for k in ("host", "username") if not getattr(self, k)]
            if missing:
                raise ValueError(f"source = 'imap' needs {', '.join(missing)}")
            if not (self.password or self.password_env):
                raise ValueError("source = 'imap' needs password or password_env")
        elif not self.path:
            raise ValueError("source = 'maildir' needs path")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls else 143)

    def resolved_password(self) -> str | None:
        return _secret(self.password, self.password_env, "mailbox")


class SmtpSection(_Section):
    transport: Literal["smtp", "maildir"] = "maildir"
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    path: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Give up on a message after this long of temporary failures (then it is marked failed).
    retry_for_hours: float = Field(default=48.0, gt=0)
    # Where each worker notes "the server accepted it" before the database knows: a crash
    # in between then never resends. Keep it on local disk.
    journal_dir: str = "var/journal"

    @model_validator(mode="after")
    def _by_transport(self) -> SmtpSection:
        if self.transport == "smtp" and not self.host:
            raise ValueError("transport = 'smtp' needs host")
        if self.transport == "maildir" and not self.path:
            raise ValueError("transport = 'maildir' needs path")
        return self

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return {"none": 25, "starttls": 587, "tls": 465}[self.security]

    def resolved_password(self) -> str | None:
        return _secret(self.password, self.password_env, "smtp")


class LmtpIntake(_Section):
    listen: str = "127.0.0.1:2424"

    @field_validator("listen")
    @classmethod
    def _hostport(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not HOST:PORT")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class IntakeSection(_Section):
    lmtp: LmtpIntake | None = None
    # Bigger messages are quarantined unparsed; attachments over the cap keep metadata only.
    max_message_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=0)


class AckSection(_Section):
    """Acknowledgement rate caps (loop safety)."""

    max_per_sender: int = Field(default=10, ge=0)
    window_hours: float = Field(default=3.0, gt=0)


class RoutingSection(_Section):
    # Phrases that make a message P1 whatever the tier (subject or the top of the body).
    urgent_phrases: list[str] = Field(default_factory=lambda: list(DEFAULT_URGENT_PHRASES))
    rules: list[Rule] = Field(default_factory=lambda: list(DEFAULT_RULES))

    @model_validator(mode="after")
    def _order(self) -> RoutingSection:
        validate_order(self.rules)
        return self


class ConversationSection(_Section):
    # A client reply to a resolved ticket reopens it within this many days; later (or
    # to a closed ticket) it opens a new ticket linked to the old one.
    reopen_days: int = Field(default=14, ge=0)


class ChangeRequestSection(_Section):
    # An estimate without an answer after this long prompts the owner...
    remind_after: str = "3 working days"
    # ...and, when true, the client gets one polite reminder too.
    remind_client: bool = False

    @field_validator("remind_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        from desk.sla.calendar import parse_duration

        parse_duration(value)
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _hhmm(value: str) -> str:
    hh, sep, mm = value.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and 0 <= int(hh) < 24 and 0 <= int(mm) < 60):
        raise ValueError(f"{value!r} is not HH:MM")
    return value


class ReportsSection(_Section):
    # Client reports: every week or fortnight (clients can differ), on this weekday and
    # local time in the client's zone.
    period: Literal["week", "fortnight", "none"] = "week"
    weekday: Weekday = "fri"
    time: str = "16:00"
    # The managers' digest, in the agency's zone.
    digest_weekday: Weekday = "mon"
    digest_time: str = "08:00"
    digest: bool = True
    # Tell the account manager when a client's month reaches these shares of its hours.
    allowance_alerts: list[float] = Field(default_factory=lambda: [0.8, 1.0])

    _times = field_validator("time", "digest_time")(lambda cls, v: _hhmm(v))


class FeedbackSection(_Section):
    enabled: bool = True
    # A rating at or below this (or "not resolved") alerts the account manager.
    low_score: int = Field(default=6, ge=1, le=10)


class SecuritySection(_Section):
    # Staff commands count only when the agency's own receiving server (named by its
    # authserv-id) reports dkim=pass or spf=pass for the sender's domain.
    require_authenticated_staff: bool = False
    trusted_authserv_id: str | None = None

    @model_validator(mode="after")
    def _needs_id(self) -> SecuritySection:
        if self.require_authenticated_staff and not self.trusted_authserv_id:
            raise ValueError("require_authenticated_staff = true needs trusted_authserv_id "
                             "(the authserv-id your receiving mail server writes)")
        return self


class Recommendation(_Section):
    phrases: list[str] = Field(min_length=1)
    tip: str = Field(min_length=1)
    link: str | None = None


class Settings(_Section):
    desk: DeskSection
    # Optional when [intake.lmtp] is set: a mail server can push instead of us pulling.
    mailbox: MailboxSection | None = None
    smtp: SmtpSection
    intake: IntakeSection = IntakeSection()
    acknowledgements: AckSection = AckSection()
    routing: RoutingSection = RoutingSection()
    conversation: ConversationSection = ConversationSection()
    sla: SlaSection = SlaSection()
    change_requests: ChangeRequestSection = ChangeRequestSection()
    reports: ReportsSection = ReportsSection()
    feedback: FeedbackSection = FeedbackSection()
    security: SecuritySection = SecuritySection()
    # Phrase -> tip table for the "Recommend" part of acknowledgements; first match wins.
    recommendations: list[Recommendation] = Field(
        default_factory=lambda: [Recommendation(**r) for r in DEFAULT_RECOMMENDATIONS])
    # Directory the config was loaded from: template overrides live in its templates/.
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")

    @model_validator(mode="after")
    def _some_intake(self) -> Settings:
        if self.mailbox is None and self.intake.lmtp is None:
            raise ValueError("mailbox: required unless [intake.lmtp] is configured")
        return self

    @property
    def database_url(self) -> str:
        return self.desk.database_url

    @property
    def template_override_dir(self) -> Path:
        return self.base_dir / "templates"


def _rule_label(data: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """``routing.rules.2.owner`` -> ``routing.rules.2 ('hosting to the CEO').owner``."""
    text = ".".join(str(p) for p in loc)
    if len(loc) >= 3 and loc[:2] == ("routing", "rules") and isinstance(loc[2], int):
        try:
            name = data["routing"]["rules"][loc[2]].get("name")
        except (KeyError, IndexError, AttributeError, TypeError):
            name = None
        if name:
            rest = ".".join(str(p) for p in loc[3:])
            text = f"routing.rules.{loc[2]} ({name!r})" + (f".{rest}" if rest else "")
    return text


def _format_errors(exc: ValidationError, data: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = _rule_label(data, tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see README's configuration reference)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_settings(data: dict[str, Any], base_dir: Path, source: str = "config") -> Settings:
    try:
        settings = Settings.model_validate({**data, "base_dir": base_dir})
        # Resolve secrets now so a missing environment variable fails at start, not mid-run.
        if settings.mailbox is not None:
            settings.mailbox.resolved_password()
        settings.smtp.resolved_password()
    except ValidationError as exc:
        raise ConfigError(f"{source} is invalid:\n{_format_errors(exc, data)}") from None
    except ValueError as exc:
        raise ConfigError(f"{source} is invalid:\n  {exc}") from None
    return settings


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("DESK_CONFIG"):
        return Path(os.environ["DESK_CONFIG"])
    return DEFAULT_CONFIG_PATH


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = config_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration at {path} (pass --config PATH or set DESK_CONFIG)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_settings(data, path.resolve().parent, str(path))

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
    ValidationInfo,
    field_validator,
    model_validator,
)

from desk.config.oauth2 import IMAP_DEFAULTS, SMTP_DEFAULTS, Oauth2Section
from desk.config.routing import DEFAULT_RULES, Rule, validate_order
from desk.config.secret_checks import (
    MAKE_ONE,
    MIN_PREVIOUS_SECRET_LENGTH,
    check_secret,
    take_from_environment,
)
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
    # The URL carries the database password: database_url_env names an environment
    # variable holding the whole URL instead. Shown anywhere, the password is masked.
    database_url: str = Field(default="sqlite:///var/desk.db", repr=False)
    database_url_env: str | None = None
    # SQLite only: how long a writer waits for a lock before the message is deferred.
    busy_timeout_seconds: float = Field(default=30.0, gt=0)
    # Declared before ``secret``: its check says where a bad value came from.
    secret_env: str | None = None
    secret: str = Field(repr=False)
    # Secrets used before the current one: reply addresses signed with them still thread
    # mail into its ticket (and still prove who wrote), so a rotation breaks no thread.
    # New mail is signed with ``secret`` only. Drop an old one after a few months.
    previous_secrets: list[str] = Field(default_factory=list, repr=False)
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

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # not a table: the field checks say so
        data = dict(data)
        take_from_environment(data, "secret", required=True,
                              hint=f" (it signs reply addresses). Make one with: {MAKE_ONE}")
        take_from_environment(data, "database_url")
        return data

    @field_validator("secret")
    @classmethod
    def _strong_secret(cls, value: str, info: ValidationInfo) -> str:
        env_name = info.data.get("secret_env")
        return check_secret(value, f"${env_name} (from secret_env)" if env_name else "it")

    @field_validator("previous_secrets")
    @classmethod
    def _strong_previous(cls, values: list[str]) -> list[str]:
        for n, value in enumerate(values):
            check_secret(value, f"entry {n}", minimum=MIN_PREVIOUS_SECRET_LENGTH,
                         advice="Remove it: mail signed with it cannot be trusted.")
        return values

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret a reply address may be signed with, the current one first."""
        return (self.secret, *self.previous_secrets)

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]


class MailboxSection(_Section):
    source: Literal["imap", "maildir"] = "maildir"
    # imap
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: bool = True
    # Certificates are always checked; this trusts a private CA in addition to the system's.
    ca_file: str | None = None
    # "oauth2": log in with a token from [oauth2] (AUTHENTICATE XOAUTH2), no password.
    auth: Literal["password", "oauth2"] = "password"
    # Not a key of its own: Settings copies [oauth2] here when auth = "oauth2".
    oauth2: Oauth2Section | None = Field(default=None, exclude=True, repr=False)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
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
            if self.auth == "password" and not (self.password or self.password_env):
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
    # Certificates are always checked; this trusts a private CA in addition to the system's.
    ca_file: str | None = None
    # "oauth2": AUTH XOAUTH2 (or OAUTHBEARER) with a token from [oauth2], no password.
    auth: Literal["password", "oauth2"] = "password"
    # Not a key of its own: Settings copies [oauth2] here when auth = "oauth2".
    oauth2: Oauth2Section | None = Field(default=None, exclude=True, repr=False)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
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
        if self.transport == "smtp" and self.auth == "oauth2" and not self.username:
            raise ValueError("auth = 'oauth2' needs username (the mailbox the token is for)")
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


class NoticesSection(_Section):
    # The client's files travel with staff notices (and a staff reply's with the relay to
    # the client) up to this many bytes per mail, all files together; the rest are listed
    # with how to get them. Mail servers commonly refuse mail over 20-25 MB.
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    # Flood guard (a backlog after downtime, a client's mail loop): a staff member gets
    # at most max_per_staff notices (new ticket, client reply, assignment) in each
    # window_minutes window; the rest wait and go together in one summary mail when the
    # window ends, every ticket with that person's own reply address. P1 notices never
    # wait (and still count).
    max_per_staff: int = 10
    window_minutes: int = 15

    @field_validator("max_per_staff")
    @classmethod
    def _some_notices(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, not {value} (how many notices a staff "
                             "member gets one by one in each window; the rest go together "
                             "in one summary mail)")
        return value

    @field_validator("window_minutes")
    @classmethod
    def _a_window(cls, value: int) -> int:
        if not 1 <= value <= 24 * 60:
            raise ValueError(f"must be from 1 to 1440 minutes (a day), not {value}: the "
                             "window in which max_per_staff notices are counted, at whose "
                             "end the summary goes")
        return value


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


class RetentionSection(_Section):
    # Raw mail (the bytes as received, and the bytes we sent) of a ticket closed (or
    # resolved) with nothing happening on it for this many days is pruned by the daemon;
    # the parsed messages, events and reports stay. Personal data is kept no longer than
    # the conversation can need it (UK GDPR / GDPR storage limitation).
    raw_mail_days: int = Field(default=180, ge=1)


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


StaffProof = Literal["either", "authenticated", "reply_address"]


class SecuritySection(_Section):
    # What proves that mail from a staff address was written by that staff member (and so
    # may be relayed to a client, carry #commands, approve or open a ticket for a client):
    #   reply_address  it was sent to the reply address desk gave that staff member for
    #                  that ticket (every notice carries one), and its From is them;
    #   authenticated  the agency's own receiving server vouches for it: the topmost
    #                  Authentication-Results header with trusted_authserv_id (or
    #                  Microsoft 365's, see receiving_server) shows dkim=pass aligned
    #                  with the From domain, spf=pass for it, or dmarc=pass;
    #   either         (default) one of the two.
    staff_proof: StaffProof = "either"
    # Kept from earlier versions: true means staff_proof = "authenticated".
    require_authenticated_staff: bool = False
    trusted_authserv_id: str | None = None
    # "rfc8601": trust the topmost Authentication-Results header carrying
    # trusted_authserv_id. "microsoft365": Exchange Online writes its header without an
    # authserv-id; trust the topmost Authentication-Results header, which Exchange stamps
    # on every message reaching the mailbox from outside the tenant.
    receiving_server: Literal["rfc8601", "microsoft365"] = "rfc8601"
    # Mail desk sends to an address it has not verified (not staff, not a client's
    # contact): at most this many per address per hour, so desk cannot be used to
    # reflect mail at a third party.
    unverified_mail_per_hour: int = Field(default=5, ge=1)

    @property
    def proof(self) -> StaffProof:
        return "authenticated" if self.require_authenticated_staff else self.staff_proof

    @property
    def can_authenticate(self) -> bool:
        return self.receiving_server == "microsoft365" or bool(self.trusted_authserv_id)

    @model_validator(mode="after")
    def _needs_id(self) -> SecuritySection:
        if self.require_authenticated_staff and not self.can_authenticate:
            raise ValueError("require_authenticated_staff = true needs trusted_authserv_id "
                             "(the authserv-id your receiving mail server writes)")
        if self.staff_proof == "authenticated" and not self.can_authenticate:
            raise ValueError('staff_proof = "authenticated" needs trusted_authserv_id (the '
                             "authserv-id your receiving mail server writes) or "
                             'receiving_server = "microsoft365"')
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
    # Where tokens come from when [mailbox] or [smtp] has auth = "oauth2".
    oauth2: Oauth2Section | None = None
    intake: IntakeSection = IntakeSection()
    acknowledgements: AckSection = AckSection()
    notices: NoticesSection = NoticesSection()
    routing: RoutingSection = RoutingSection()
    conversation: ConversationSection = ConversationSection()
    sla: SlaSection = SlaSection()
    change_requests: ChangeRequestSection = ChangeRequestSection()
    reports: ReportsSection = ReportsSection()
    feedback: FeedbackSection = FeedbackSection()
    retention: RetentionSection = RetentionSection()
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

    @model_validator(mode="before")
    @classmethod
    def _wire_oauth2(cls, data: Any) -> Any:
        """Hand [oauth2] to the sections that log in with it; with a known provider they
        may leave out host and port."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        oauth2 = data.get("oauth2")
        provider = str(oauth2.get("provider")) if isinstance(oauth2, dict) else ""
        sections: tuple[tuple[str, dict[str, tuple[Any, ...]]], ...] = (
            ("mailbox", dict(IMAP_DEFAULTS)), ("smtp", dict(SMTP_DEFAULTS)))
        for name, defaults in sections:
            section = data.get(name)
            if not isinstance(section, dict):
                continue
            if "oauth2" in section:
                raise ValueError(f"{name}.oauth2: unknown key (the token settings live in "
                                 "their own [oauth2] section)")
            if section.get("auth") != "oauth2" or oauth2 is None:
                continue
            section = {**section, "oauth2": oauth2}
            if provider in defaults and not section.get("host"):
                host, port, *security = defaults[provider]
                section = {"port": port, **({"security": security[0]} if security else {}),
                           **section, "host": host}
            data[name] = section
        return data

    @model_validator(mode="after")
    def _oauth2_configured(self) -> Settings:
        users = [name for name, section in (("mailbox", self.mailbox), ("smtp", self.smtp))
                 if section is not None and section.auth == "oauth2" and not section.oauth2]
        if users:
            raise ValueError(f"{' and '.join(users)}: auth = 'oauth2' needs an [oauth2] section")
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


def hide_secrets_of(settings: Settings) -> None:
    """From here on no log line or error of this process shows these values."""
    from desk.logs import hide
    from desk.store.db import hide_url_password

    hide(settings.desk.secret, *settings.desk.previous_secrets, settings.smtp.resolved_password())
    if settings.mailbox is not None:
        hide(settings.mailbox.resolved_password())
    hide_url_password(settings.database_url)

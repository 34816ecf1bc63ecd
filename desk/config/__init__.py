"""Configuration: the TOML file read into validated, typed settings (``settings``), with
the schemas of its routing rules (``routing``) and SLA section (``sla``)."""

from desk.config.settings import (
    ConfigError,
    IntakeSection,
    MailboxSection,
    Recommendation,
    SecuritySection,
    Settings,
    SmtpSection,
    load_settings,
    parse_settings,
)

__all__ = [
    "ConfigError",
    "IntakeSection",
    "MailboxSection",
    "Recommendation",
    "SecuritySection",
    "Settings",
    "SmtpSection",
    "load_settings",
    "parse_settings",
]

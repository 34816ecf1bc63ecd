"""Configuration: good files load, bad ones are refused naming the key (exit code 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from desk.config.settings import ConfigError, load_settings
from tests.support import SECRET, toml

GOOD = {
    "desk": {"address": "support@agency.test", "secret": SECRET},
    "mailbox": {"source": "imap", "host": "127.0.0.1", "port": 143, "tls": False,
                "username": "support@agency.test", "password_env": "DESK_TEST_PW"},
    "smtp": {"transport": "smtp", "host": "127.0.0.1", "port": 25, "security": "none"},
}


def write(tmp_path: Path, sections: dict) -> Path:  # type: ignore[type-arg]
    path = tmp_path / "desk.toml"
    path.write_text(toml(sections))
    return path


def variant(section: str, **changes: object) -> dict:  # type: ignore[type-arg]
    data = {k: dict(v) for k, v in GOOD.items()}
    data[section].update(changes)
    return data


def test_good_config_loads_with_secret_from_environment(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TEST_PW", "s3cret")
    s = load_settings(write(tmp_path, GOOD))
    assert s.mailbox.resolved_password() == "s3cret"
    assert s.desk.database_url == "sqlite:///var/desk.db"
    assert s.mailbox.folder == "INBOX"
    assert s.desk.domain == "agency.test"


@pytest.mark.parametrize("data, named", [
    (variant("desk", adress="typo@x.test"), "desk.adress"),
    (variant("mailbox", sorce="imap"), "mailbox.sorce"),
    (variant("mailbox", source="pop3"), "mailbox.source"),
    (variant("mailbox", port="not a port"), "mailbox.port"),
    (variant("smtp", security="ssl"), "smtp.security"),
    (variant("desk", timezone="Mars/Olympus"), "desk.timezone"),
    (variant("desk", address="not-an-address"), "desk.address"),
    (variant("desk", secret="short"), "desk.secret"),
    ({**GOOD, "extra": {"x": 1}}, "extra"),
    ({k: v for k, v in GOOD.items() if k != "smtp"}, "smtp"),
])
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, data: dict,  # type: ignore[type-arg]
                                               named: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TEST_PW", "x")
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, data))
    assert named in str(err.value)


def test_missing_password_variable_is_refused(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match="DESK_TEST_PW"):
        load_settings(write(tmp_path, GOOD))


def test_imap_without_host_is_refused(tmp_path: Path) -> None:
    data = variant("mailbox", host=None)
    data["mailbox"].pop("host")
    with pytest.raises(ConfigError, match="host"):
        load_settings(write(tmp_path, data))


def test_cli_exits_2_with_the_key_named(tmp_path: Path) -> None:
    path = write(tmp_path, variant("smtp", transprt="smtp"))
    proc = subprocess.run([sys.executable, "-m", "desk", "--config", str(path), "check-config"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "smtp.transprt" in proc.stderr and "unknown key" in proc.stderr


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TEST_PW", "x")
    monkeypatch.setenv("DESK_CONFIG", str(write(tmp_path, GOOD)))
    assert load_settings().mailbox.host == "127.0.0.1"


def test_shipped_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_SECRET", SECRET)  # it takes the secret from the environment
    s = load_settings(Path(__file__).resolve().parents[2] / "config" / "desk.toml")
    assert s.mailbox.source == "maildir" and s.smtp.transport == "maildir"


def test_bad_routing_rule_is_refused_at_start_naming_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "desk.toml"
    path.write_text(toml({k: v for k, v in GOOD.items() if k != "mailbox"} | {
        "intake": {"lmtp": {"listen": "127.0.0.1:2424"}}}) + (
        "\n[[routing.rules]]\nname = \"hosting to the CEO\"\n"
        "match = { tier = [\"hosting\"] }\nowner = \"ceo\"\n"))
    proc = subprocess.run([sys.executable, "-m", "desk", "--config", str(path), "check-config"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "routing.rules.0 ('hosting to the CEO').owner" in proc.stderr, proc.stderr
    assert "'ceo' is not a client role" in proc.stderr

"""[desk] secret must be strong and not the example; secret_env and database_url_env read
the environment; passwords and the secret are masked wherever desk shows text."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from desk.config.settings import ConfigError, load_settings
from desk.logs import JsonFormatter, MaskingFormatter, hide, mask_secrets
from desk.store.db import display_url
from tests.support import SECRET, toml

MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
EXAMPLE = "change-me-to-a-long-random-string"
REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, **desk: Any) -> Path:
    path = tmp_path / "desk.toml"
    path.write_text(toml({
        "desk": {"address": "support@agency.test", **desk},
        "mailbox": {"source": "maildir", "path": str(tmp_path / "in")},
        "smtp": {"transport": "maildir", "path": str(tmp_path / "out")},
    }))
    return path


def refusal(tmp_path: Path, **desk: Any) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, **desk))
    return str(err.value)


def test_the_example_secret_is_refused_saying_how_to_make_one(tmp_path: Path) -> None:
    text = refusal(tmp_path, secret=EXAMPLE)
    assert "desk.secret" in text and "example value" in text and MAKE_ONE in text
    assert EXAMPLE not in text  # the refusal never repeats a secret


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    text = refusal(tmp_path, secret="x" * 31)
    assert "desk.secret" in text and "31 characters, at least 32" in text and MAKE_ONE in text
    assert load_settings(write(tmp_path, secret="x" * 32)).desk.secret == "x" * 32


def test_no_secret_at_all_is_refused(tmp_path: Path) -> None:
    text = refusal(tmp_path)
    assert "secret or secret_env is required" in text and MAKE_ONE in text


def test_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TEST_SECRET", SECRET)
    assert load_settings(write(tmp_path, secret_env="DESK_TEST_SECRET")).desk.secret == SECRET

    monkeypatch.setenv("DESK_TEST_SECRET", "too-short")
    text = refusal(tmp_path, secret_env="DESK_TEST_SECRET")
    assert "desk.secret: $DESK_TEST_SECRET (from secret_env) is 9 characters" in text

    monkeypatch.delenv("DESK_TEST_SECRET")
    text = refusal(tmp_path, secret_env="DESK_TEST_SECRET")
    assert "secret_env names $DESK_TEST_SECRET, which is not set" in text and MAKE_ONE in text


def test_secret_and_secret_env_together_are_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TEST_SECRET", SECRET)
    assert "set secret or secret_env, not both" in refusal(
        tmp_path, secret=SECRET, secret_env="DESK_TEST_SECRET")


def test_database_url_from_the_environment(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://desk:pw-from-env@db.internal/desk"
    monkeypatch.setenv("DESK_TEST_DB", url)
    s = load_settings(write(tmp_path, secret=SECRET, database_url_env="DESK_TEST_DB"))
    assert s.database_url == url

    monkeypatch.delenv("DESK_TEST_DB")
    assert "database_url_env names $DESK_TEST_DB, which is not set" in refusal(
        tmp_path, secret=SECRET, database_url_env="DESK_TEST_DB")
    assert "set database_url or database_url_env, not both" in refusal(
        tmp_path, secret=SECRET, database_url="sqlite://", database_url_env="DESK_TEST_DB")


def test_previous_secrets_are_checked_too(tmp_path: Path) -> None:
    text = refusal(tmp_path, secret=SECRET, previous_secrets=["ok-old-secret-1234", EXAMPLE])
    assert "desk.previous_secrets: entry 1 is the example value" in text
    assert "entry 0 is 5 characters" in refusal(tmp_path, secret=SECRET,
                                                previous_secrets=["short"])
    # 16 characters were enough before: a secret rotated out of use keeps its threads.
    s = load_settings(write(tmp_path, secret=SECRET, previous_secrets=["s" * 16]))
    assert s.desk.secrets == (SECRET, "s" * 16)


def test_the_shipped_config_takes_its_secret_from_the_environment(tmp_path: Path) -> None:
    config = REPO / "config" / "desk.toml"
    assert 'secret_env = "DESK_SECRET"' in config.read_text()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "desk", "--config", str(config), "check-config"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "secret_env names $DESK_SECRET, which is not set" in proc.stderr
    assert MAKE_ONE in proc.stderr


def test_settings_never_show_secrets_in_their_repr(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, secret=SECRET,
                            database_url="postgresql://desk:db-password-1@h/d"))
    assert SECRET not in repr(s) and "db-password-1" not in repr(s)


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://desk:pw@db.internal:5432/desk",
     "postgresql+psycopg://desk:***@db.internal:5432/desk"),
    ("postgresql://desk:p%40ss@host/db", "postgresql://desk:***@host/db"),
    ("postgresql://desk:raw@sign@host/db", "postgresql://desk:***@host/db"),
    ("sqlite:///var/desk.db", "sqlite:///var/desk.db"),
    ("postgresql://desk@host/db", "postgresql://desk@host/db"),
])
def test_database_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_errors_and_log_lines_are_masked() -> None:
    hide("a-known-password-42", "short")
    text = mask_secrets("Could not parse 'mysql://u:hunter2@h/d'; password=s3cr3t host=h; "
                        "login with a-known-password-42 failed; short stays")
    assert "hunter2" not in text and "s3cr3t" not in text and "a-known-password-42" not in text
    assert "mysql://u:***@h/d" in text and "short stays" in text  # too short to hunt for

    try:
        raise RuntimeError("cannot connect to postgresql://desk:tb-secret@db/desk")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed: %s", ("a-known-password-42",),
            sys.exc_info())
    for formatter in (MaskingFormatter("%(message)s"), JsonFormatter()):
        line = formatter.format(record)
        assert "tb-secret" not in line and "a-known-password-42" not in line, line

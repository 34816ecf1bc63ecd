"""[notices] max_per_staff and window_minutes: sensible defaults, and a bad value is
refused at start with the key named and what it is for."""

from __future__ import annotations

from pathlib import Path

import pytest

from desk.config.settings import ConfigError, load_settings
from tests.support import SECRET, toml

BASE = {
    "desk": {"address": "support@agency.test", "secret": SECRET},
    "mailbox": {"source": "maildir", "path": "var/mail/inbox"},
    "smtp": {"transport": "maildir", "path": "var/mail/sent"},
}


def load(tmp_path: Path, notices: dict[str, object] | None = None) -> object:
    path = tmp_path / "desk.toml"
    path.write_text(toml({**BASE, **({"notices": notices} if notices is not None else {})}))
    return load_settings(path)


def test_defaults_are_ten_notices_per_quarter_hour(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert (settings.notices.max_per_staff, settings.notices.window_minutes) == (10, 15)  # type: ignore[attr-defined]


@pytest.mark.parametrize("notices, said", [
    ({"max_per_staff": 0}, "notices.max_per_staff: must be at least 1, not 0"),
    ({"max_per_staff": -5}, "notices.max_per_staff: must be at least 1, not -5"),
    ({"max_per_staff": "ten"}, "notices.max_per_staff"),
    ({"window_minutes": 0}, "notices.window_minutes: must be from 1 to 1440 minutes"),
    ({"window_minutes": 10080}, "notices.window_minutes: must be from 1 to 1440 minutes"),
    ({"window_minute": 5}, "notices.window_minute: unknown key"),
])
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, notices: dict[str, object],
                                               said: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, notices)
    assert said in str(err.value)

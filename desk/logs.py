"""One log line per event; JSON lines for log shippers (``--log-format json``). No line
shows a password or the desk's secret: every formatted line, traceback included, goes
through ``mask_secrets``."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType

MASK = "***"
# scheme://user:password@host: drivers and SQLAlchemy put the whole URL in some errors.
# The password runs to the last "@" before the path, as a password may hold an "@".
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]*:)(?P<password>[^\s'\"/]*)@")
# libpq's key=value connection strings.
_CONNINFO_PASSWORD = re.compile(r"\b(?P<head>password\s*=\s*)(?P<password>'[^']*'|[^\s,;)]+)",
                                re.IGNORECASE)
# Shorter values are too likely to be ordinary words to be replaced wherever they appear;
# in URLs they are masked whatever their length.
MIN_HIDDEN_LENGTH = 8

_hidden: set[str] = set()


def hide(*values: str | None) -> None:
    """Never show these values (passwords, the secret) in a log line or an error."""
    _hidden.update(v for v in values if v and len(v) >= MIN_HIDDEN_LENGTH)


def url_passwords(text: str) -> list[str]:
    """The passwords of the URLs in ``text``, as written."""
    return [m["password"] for m in _URL_PASSWORD.finditer(text)]


def mask_secrets(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _CONNINFO_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
    # Longest first: a value containing another is masked whole.
    for value in sorted(_hidden, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        if record.exc_info:
            data["error"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else MaskingFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Schema checks at start are routine, not news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # It explains every guess at DEBUG: a few lines per mail without a charset.
    logging.getLogger("charset_normalizer").setLevel(logging.WARNING)


def _print_masked(kind: type[BaseException] | None, exc: BaseException | None,
                  tb: TracebackType | None) -> None:
    text = "".join(traceback.format_exception(kind, exc, tb))
    sys.stderr.write(mask_secrets(text))


def _print_masked_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # as threading's own hook: a thread that exits says nothing
    sys.stderr.write(f"Exception in thread {args.thread.name if args.thread else '?'}:\n")
    _print_masked(args.exc_type, args.exc_value, args.exc_traceback)


def mask_uncaught() -> None:
    """A traceback that reaches the interpreter is printed masked too."""
    sys.excepthook = _print_masked
    threading.excepthook = _print_masked_thread

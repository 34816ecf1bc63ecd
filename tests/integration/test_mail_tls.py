"""Real certificate checks: Dovecot with a certificate from a throwaway CA; `desk
check-mail` trusts it only through `ca_file`, and names a wrong host or an untrusted
certificate in one line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import DEFAULT_PASSWORD, Dovecot, SmtpCapture, ThrowawayCa, make_root
from tests.support import SUPPORT_USER, DeskEnv, EnvFactory, smtp_to


@pytest.fixture(scope="module")
def ca() -> ThrowawayCa:
    return ThrowawayCa(make_root("desk-ca-"))


@pytest.fixture(scope="module")
def tls_imap(ca: ThrowawayCa) -> Iterator[Dovecot]:
    # Valid for the IP only: "localhost" is then a wrong host name.
    server = Dovecot(tls=ca.issue("imap", ["127.0.0.1"])).start(make_root())
    yield server
    server.stop()


def mailbox(imap: Dovecot, **extra: Any) -> dict[str, Any]:
    return {"source": "imap", "host": "127.0.0.1", "port": imap.imaps_port, "tls": True,
            "username": SUPPORT_USER, "password": DEFAULT_PASSWORD, **extra}


def check(make_env: EnvFactory, smtp: SmtpCapture, name: str, **box: Any) -> tuple[int, str]:
    env: DeskEnv = make_env(name, mailbox=box, smtp=smtp_to(smtp), seed=False)
    proc = env.desk("check-mail", check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_trusted_through_ca_file(ca: ThrowawayCa, tls_imap: Dovecot, smtp_capture: SmtpCapture,
                                 make_env: EnvFactory) -> None:
    code, out = check(make_env, smtp_capture, "ok", **mailbox(tls_imap, ca_file=str(ca.cert_path)))
    assert code == 0, out
    assert "IDLE yes" in out and "UIDVALIDITY" in out and "extensions:" in out


def test_untrusted_certificate_is_named(tls_imap: Dovecot, smtp_capture: SmtpCapture,
                                        make_env: EnvFactory) -> None:
    code, out = check(make_env, smtp_capture, "untrusted", **mailbox(tls_imap))
    assert code == 1
    assert "not trusted" in out and "ca_file" in out and "Traceback" not in out


def test_wrong_host_name_is_named(ca: ThrowawayCa, tls_imap: Dovecot, smtp_capture: SmtpCapture,
                                  make_env: EnvFactory) -> None:
    code, out = check(make_env, smtp_capture, "wrong-host",
                      **mailbox(tls_imap, host="localhost", ca_file=str(ca.cert_path)))
    assert code == 1
    assert "not valid for the name localhost" in out and "Traceback" not in out


def test_refused_connection_and_missing_folder(tls_imap: Dovecot, ca: ThrowawayCa,
                                               smtp_capture: SmtpCapture,
                                               make_env: EnvFactory) -> None:
    code, out = check(make_env, smtp_capture, "missing-folder",
                      **mailbox(tls_imap, ca_file=str(ca.cert_path), folder="Nope"))
    assert code == 1 and "folder 'Nope'" in out
    from tests.servers import free_port

    code, out = check(make_env, smtp_capture, "refused",
                      **mailbox(tls_imap, port=free_port()))
    assert code == 1 and "refused the connection" in out

"""Real servers on loopback for the test suite: Dovecot (IMAP + LMTP), an SMTP sink, PostgreSQL.

A plain module (no pytest) so benchmarks and ad-hoc scripts can reuse it. Every server:

- runs from its own config under its own root directory (never /etc),
- listens on 127.0.0.1 on ports the kernel hands out, so concurrent runs cannot clash,
- is a direct child process of ours that gets SIGTERM if we die (PR_SET_PDEATHSIG), and is
  also stopped by an atexit hook, so a crashed or killed test run leaves nothing behind.

Dovecot and PostgreSQL drop privileges (to `mail` / `postgres`), so their roots must be
traversable by other users: `make_root()` creates such a directory under /tmp (pytest's own
tmp dirs are 0700).

Run as a script (`python servers.py smtp-capture ROOT HOST PORT`) this file is the SMTP sink
child process; that entry point only imports the standard library and aiosmtpd.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import psycopg
    from imapclient import IMAPClient

HOST = "127.0.0.1"
DEFAULT_PASSWORD = "secret"
DEFAULT_USERS: dict[str, str] = {
    "support@agency.test": DEFAULT_PASSWORD,
    "staff@agency.test": DEFAULT_PASSWORD,
    "client@client.test": DEFAULT_PASSWORD,
}
INSTALL_HINT = "run scripts/test.sh once (it apt-installs dovecot-imapd, dovecot-lmtpd, postgresql)"


# --------------------------------------------------------------------------- helpers


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago.

    Another process can still grab it before the server binds; servers that take a port
    number therefore retry with a fresh one when binding fails on first start.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def make_root(prefix: str = "desk-test-") -> Path:
    """A fresh 0755 directory under /tmp that privilege-dropped servers can traverse."""
    # Not tempfile.gettempdir(): TMPDIR may point at a private 0700 directory.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False


def _wait_port_closed(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while port_open(host, port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host}:{port} still accepts connections after {timeout}s")
        time.sleep(0.02)


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(
            f"{what} in the test harness must be started as root (it drops privileges to "
            "system users itself); run the suite as root, e.g. via scripts/test.sh"
        )


def _ensure_traversable(path: Path, who: str) -> None:
    """Fail early with a useful message instead of a cryptic EACCES deep inside a server."""
    for p in [path, *path.parents]:
        if p.exists() and not p.stat().st_mode & 0o001:
            raise RuntimeError(
                f"{p} is not traversable by other users but {who} needs to reach {path}; "
                "use tests.servers.make_root() (a 0755 dir under /tmp) as the server root"
            )


def _log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the forked child right before exec: if the test process is SIGKILLed (CI
    # timeout, OOM) the server gets SIGTERM instead of living on as an orphan. Python sets
    # uid/gid before calling preexec_fn, and the kernel clears this flag on credential
    # changes, so it must be set here, after the switch.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_RUNNING: dict[int, _Stoppable] = {}


def _track(server: _Stoppable) -> None:
    _RUNNING[id(server)] = server


def _untrack(server: _Stoppable) -> None:
    _RUNNING.pop(id(server), None)


# roots that start() created itself because the caller passed none: nobody else will
# remove them
_SCRATCH_ROOTS: list[Path] = []


def _scratch_root(prefix: str) -> Path:
    root = make_root(prefix)
    _SCRATCH_ROOTS.append(root)
    return root


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING.values()):
        with contextlib.suppress(Exception):
            server.stop()
    if not os.environ.get("DESK_KEEP_TEST_SERVERS"):
        for root in _SCRATCH_ROOTS:
            shutil.rmtree(root, ignore_errors=True)


def _terminate(
    proc: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    *,
    group: bool = False,
    timeout: float = 15,
) -> None:
    """Signal the server (or its whole process group), wait, then SIGKILL any leftovers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    # The server was started in its own session (pgid == its pid): worker processes that
    # outlive their master would keep client connections half-open.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _live_group_members(pgid: int) -> set[int]:
    """Non-zombie processes in process group `pgid` (from /proc)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may contain spaces, so split after ")"
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(stat.parent.name))
    return members


# --------------------------------------------------------------------------- Dovecot


class StoredMail(NamedTuple):
    """One message as stored on the IMAP server; unpacks as `uid, flags, raw`."""

    uid: int
    flags: set[str]
    raw: bytes


def _parse_uid_set(text: str) -> list[int]:
    uids: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        uids.extend(range(int(lo), int(hi or lo) + 1))
    return uids


def _appenduids(response: object) -> list[int]:
    # append() returns the response text, multiappend() a (typ, [text]) pair
    if isinstance(response, tuple):
        response = response[1][-1]
    text = response.decode() if isinstance(response, bytes) else str(response)
    m = re.search(r"APPENDUID \d+ ([\d:,]+)", text)
    if not m:
        raise RuntimeError(f"server gave no APPENDUID: {text!r}")
    return _parse_uid_set(m.group(1))


def _decode_flags(flags: Iterable[bytes | str]) -> set[str]:
    return {f.decode() if isinstance(f, bytes) else f for f in flags}


class Dovecot:
    """A standalone Dovecot 2.3 with IMAP and LMTP on loopback, plaintext, passwd-file users.

    `Dovecot().start(make_root())`; users may be added before or after start.
    """

    host: str = HOST
    # Folders that exist for every user (auto-created by the config below) and survive
    # `reset_user`.
    SPECIAL_FOLDERS: tuple[str, ...] = ("INBOX", "Sent", "Trash")

    def __init__(
        self,
        users: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        *,
        idle_notify_interval: int = 10,
        oauth2_introspection_url: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """`users`: email -> password; defaults to DEFAULT_USERS.

        `oauth2_introspection_url`: also accept XOAUTH2/OAUTHBEARER logins whose token
        that RFC 7662 endpoint (TokenServer) calls active for the user. `tls`: (certificate,
        key) files; IMAPS listens on `imaps_port` besides the plaintext `imap_port`.

        `idle_notify_interval` (seconds): how often Dovecot sends `* OK Still here` during
        IDLE; small so keep-alive handling gets exercised within a test's lifetime.
        """
        pairs = (users.items() if isinstance(users, Mapping) else users) if users else None
        self.users: dict[str, str] = dict(pairs) if pairs is not None else dict(DEFAULT_USERS)
        self.idle_notify_interval = idle_notify_interval
        self.oauth2_introspection_url = oauth2_introspection_url
        self.tls = tls
        self.imaps_port: int | None = None
        self._users_mtime = 0
        self.root: Path | None = None
        self.imap_port: int | None = None
        self.lmtp_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths -----------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        return self._root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self._root / "dovecot.log"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("Dovecot has no root yet: call start() first")
        return self.root

    # -- users -----------------------------------------------------------------------
    def add_user(self, email: str, password: str = DEFAULT_PASSWORD) -> None:
        """Works before and after start (after start it takes up to 1 s, see _write_users)."""
        self.users[email] = password
        if self.root is not None:
            self._write_users()

    def add_users(self, users: Iterable[str | tuple[str, str]]) -> None:
        """Plain emails get DEFAULT_PASSWORD."""
        for item in users:
            email, password = (item, DEFAULT_PASSWORD) if isinstance(item, str) else item
            self.users[email] = password
        if self.root is not None:
            self._write_users()

    def _write_users(self) -> None:
        path = self._root / "users"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        # the auth process runs as the unprivileged `dovecot` user
        tmp.chmod(0o644)
        # Dovecot reloads passwd-file when mtime (whole seconds) or size differ: a password
        # change of equal length within the same second would go unnoticed without this bump.
        self._users_mtime = max(int(time.time()), self._users_mtime + 1)
        os.utime(tmp, (self._users_mtime, self._users_mtime))
        tmp.replace(path)
        if self.running:
            # ...and it stats the file at most once per second of its clock: wait for the
            # next second so the very next login sees the change.
            time.sleep(1.02 - time.time() % 1)

    # -- lifecycle -------------------------------------------------------------------
    @staticmethod
    def _binary() -> str:
        found = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
        )
        workers = (Path("/usr/lib/dovecot/imap"), Path("/usr/lib/dovecot/lmtp"))
        if not found or not all(w.exists() for w in workers):
            raise RuntimeError(f"Dovecot (imapd + lmtpd) is not installed: {INSTALL_HINT}")
        return found

    def start(self, root: Path | None = None) -> Dovecot:
        """Start (or, after stop(), start again on the same ports and mail store)."""
        if self.running:
            raise RuntimeError("Dovecot is already running")
        binary = self._binary()
        _require_root("Dovecot")
        self.root = root = (
            Path(root) if root is not None else (self.root or _scratch_root("desk-dovecot-"))
        )
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        _ensure_traversable(root, "Dovecot's mail processes (user `mail`)")
        mail = pwd.getpwnam("mail")
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir(exist_ok=True)
        os.chown(root / "mail", mail.pw_uid, mail.pw_gid)
        self._write_users()

        # Retry only when we picked the ports ourselves: someone may have grabbed one between
        # free_port() and Dovecot's bind. Fixed ports (restart) must come back as they were.
        pick = self.imap_port is None
        for attempt in range(5):
            if pick:
                self.imap_port, self.lmtp_port = free_port(), free_port()
                if self.tls:
                    self.imaps_port = free_port()
            self._write_config(mail.pw_uid, mail.pw_gid)
            try:
                self._spawn(binary)
                break
            except RuntimeError:
                if (
                    not pick
                    or attempt == 4
                    or "Address already in use" not in _log_tail(self.log_path, 10)
                ):
                    raise
        _track(self)
        return self

    def _extra_config(self) -> tuple[str, str, str]:
        """(mechanisms, settings, listeners) for OAuth2 and TLS; empty when neither."""
        mechanisms, settings, imaps = "", "", "0"
        if self.oauth2_introspection_url:
            mechanisms = " xoauth2 oauthbearer"
            ext = self._root / "dovecot-oauth2.conf.ext"
            ext.write_text(f"""\
introspection_mode = post
introspection_url = {self.oauth2_introspection_url}
username_attribute = username
active_attribute = active
active_value = true
""")
            ext.chmod(0o644)
            settings += f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {ext}
}}
"""
        if self.tls:
            settings += f"""
ssl_cert = <{self.tls[0]}
ssl_key = <{self.tls[1]}
"""
            imaps = f"{self.imaps_port}\n    address = 127.0.0.1"
        return mechanisms, settings, imaps

    def _write_config(self, uid: int, gid: int) -> None:
        root = self._root
        mechanisms, extra, imaps = self._extra_config()
        self.conf_path.write_text(f"""\
# standalone test instance: does NOT read /etc/dovecot
instance_name = desk-test-{self.imap_port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = {"yes" if self.tls else "no"}
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
login_trusted_networks = 127.0.0.0/8
# tests log in with wrong passwords on purpose: no failure delay (default 2 s) ...
auth_failure_delay = 0
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%d/%n/Maildir
# durability is worthless here and fsync dominates APPEND/LMTP time
mail_fsync = never
mail_privileged_group =
# IDLE: inotify wakes clients ~0.5 s after a change; this polling fallback only matters on
# filesystems without inotify. Keep-alives come often enough to be seen in tests.
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = {self.idle_notify_interval} secs
# restart() must drop IMAP sessions like a real server restart does
shutdown_clients = yes
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
  default_fields = uid={uid} gid={gid} home={root}/mail/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {imaps}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
# ... and no per-IP auth penalty (2, 4, 8, 15 s) either
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap {{
  process_limit = 1024
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
protocol lmtp {{
  postmaster_address = postmaster@agency.test
}}
{extra}""")

    def _spawn(self, binary: str) -> None:
        assert self.imap_port is not None and self.lmtp_port is not None
        # -F keeps the master in the foreground as our child: we can see it die and reap it.
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                [binary, "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._root,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._proc = proc
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                self._proc = None
                raise RuntimeError(
                    f"dovecot exited with {proc.returncode} on start:\n{_log_tail(self.log_path)}"
                )
            if self._banner_ok():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not come up:\n{_log_tail(self.log_path)}")
            time.sleep(0.02)

    def _banner_ok(self) -> bool:
        assert self.imap_port is not None and self.lmtp_port is not None
        try:
            with socket.create_connection((self.host, self.imap_port), 0.5) as s:
                if not s.recv(200).startswith(b"* OK"):
                    return False
            # the master binds every listener before serving any, but be explicit
            return port_open(self.host, self.lmtp_port)
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the master (which kills its imap/lmtp children); wait until the port is closed."""
        proc, self._proc = self._proc, None
        _untrack(self)
        if proc is None:
            return
        # SIGTERM to the whole group: every imap process says BYE and exits at once (signalled
        # alone, the master takes 1-6 s to bring its children down). The workers finish what
        # they are doing; once they are gone, the master only sits in a ~1 s shutdown timer
        # with nothing left to protect, so it gets SIGKILL after a short grace.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _live_group_members(proc.pid) - {proc.pid} and time.monotonic() < deadline:
            time.sleep(0.01)
        _terminate(proc, timeout=0.1)
        if self.imap_port is not None:
            _wait_port_closed(self.host, self.imap_port)

    def restart(self) -> None:
        """Stop then start on the same ports with the same mail store (drops IMAP sessions)."""
        self.stop()
        self.start()

    # -- IMAP helpers for tests ------------------------------------------------------
    def imap_settings(self, user: str, password: str | None = None) -> dict[str, str | int]:
        assert self.imap_port is not None
        return {
            "host": self.host,
            "port": self.imap_port,
            "username": user,
            "password": password
            if password is not None
            else self.users.get(user, DEFAULT_PASSWORD),
        }

    @contextlib.contextmanager
    def connect(self, user: str, password: str | None = None) -> Iterator[IMAPClient]:
        """A logged-in plaintext IMAPClient, logged out (socket closed) on exit."""
        from imapclient import IMAPClient

        settings = self.imap_settings(user, password)
        client = IMAPClient(self.host, port=int(settings["port"]), ssl=False, timeout=15)
        try:
            client.login(user, str(settings["password"]))
            yield client
        finally:
            try:
                client.logout()
            except Exception:
                # already dead (e.g. the test restarted the server): just drop the socket
                with contextlib.suppress(Exception):
                    client.shutdown()

    def append(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        flags: Iterable[str | bytes] = (),
        msg_time: object | None = None,
    ) -> int:
        """APPEND one message; returns its UID. `msg_time`: a datetime for INTERNALDATE."""
        with self.connect(user) as c:
            return _appenduids(c.append(folder, raw, flags=tuple(flags), msg_time=msg_time))[0]

    def multiappend(self, user: str, raws: Iterable[bytes], folder: str = "INBOX") -> list[int]:
        """One MULTIAPPEND command (~20x faster than single APPENDs); returns the UIDs."""
        msgs = list(raws)
        if not msgs:
            return []
        with self.connect(user) as c:
            return _appenduids(c.multiappend(folder, msgs))

    def lmtp_deliver(self, rcpt: str, raw: bytes, sender: str = "sender@elsewhere.test") -> None:
        """Deliver through Dovecot's LMTP like an MTA would (one RCPT per transaction:
        smtplib.LMTP mis-reads the per-recipient replies of multi-RCPT transactions)."""
        assert self.lmtp_port is not None
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=15) as lmtp:
            lmtp.sendmail(sender, [rcpt], raw)

    def fetch_all(self, user: str, folder: str = "INBOX") -> list[StoredMail]:
        """Every message in `folder` as (uid, flags, raw), by UID; read-only, so it sets no
        \\Seen; flags are str (`"\\Seen"`, `"$Label"`), without the per-session \\Recent."""
        with self.connect(user) as c:
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            data = c.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
        return sorted(
            # \\Recent only says which session saw the mail first: noise for assertions
            StoredMail(uid, _decode_flags(d[b"FLAGS"]) - {"\\Recent"}, d[b"BODY[]"])
            for uid, d in data.items()
        )

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.connect(user) as c:
            return int(c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def reset_mailbox(self, user: str, folder: str = "INBOX") -> None:
        """Expunge every message in `folder` (UIDVALIDITY and the UID counter stay)."""
        with self.connect(user) as c:
            self._expunge_all(c, folder)

    @staticmethod
    def _expunge_all(c: IMAPClient, folder: str) -> None:
        c.select_folder(folder)
        uids = c.search("ALL")
        if uids:
            c.add_flags(uids, [b"\\Deleted"], silent=True)
            c.expunge()
        c.close_folder()

    def reset_user(self, user: str) -> None:
        """Empty INBOX/Sent/Trash and delete every other folder: a clean slate per test."""
        with self.connect(user) as c:
            folders = [name for _flags, _sep, name in c.list_folders()]
            # children first, so a parent is never deleted before its subfolders
            for name in sorted(folders, key=len, reverse=True):
                if name in self.SPECIAL_FOLDERS:
                    self._expunge_all(c, name)
                else:
                    c.delete_folder(name)

    def maildir(self, user: str) -> Path:
        local, _, domain = user.partition("@")
        return self._root / "mail" / domain / local / "Maildir"

    def reset_uidvalidity(self, user: str) -> int:
        """Give INBOX a new UIDVALIDITY, keeping its messages and flags; returns the new value.

        Does what a real server does when its index is lost: Dovecot rebuilds INBOX from the
        message files, numbers them again from UID 1 and takes the next UIDVALIDITY from its
        per-user counter (so the value really changes, even within the same second). Open
        sessions with INBOX selected notice on their next sync and are disconnected.
        """
        old = self.uidvalidity(user)
        # IMAP cannot do it: DELETE INBOX is forbidden, and Dovecot refuses RENAME INBOX for
        # Maildir. So drop the UID map and the indexes that cache it, keep the message files
        # (flags live in their names) and dovecot-keywords / dovecot-uidvalidity.
        box = self.maildir(user)
        for path in [
            box / "dovecot-uidlist",
            *box.glob("dovecot.index*"),
            *box.glob("dovecot.list.index*"),
        ]:
            path.unlink(missing_ok=True)
        new = self.uidvalidity(user)
        if new == old:
            raise RuntimeError(f"UIDVALIDITY of {user}'s INBOX did not change ({old})")
        return new


# --------------------------------------------------------------------------- SMTP sink

SMTP_MODES = (None, "tempfail", "permfail")
_TEMPFAIL_REPLY = "451 4.3.0 Temporary failure (test sink in tempfail mode)"
_PERMFAIL_REPLY = "554 5.3.0 Transaction failed (test sink in permfail mode)"


@dataclass(frozen=True)
class CapturedMail:
    envelope_from: str
    rcpt_tos: list[str]
    raw: bytes
    msg: EmailMessage
    path: Path


class SmtpCapture:
    """An aiosmtpd SMTP server in a separate process that stores every message it accepts.

    Each accepted message becomes `messages/NNNNNNNN.eml` in the root (written to a temp
    name then renamed, so readers never see half a file); its first line is the JSON
    envelope, the rest the raw message as received. The reply to DATA follows the mode file
    in the root, re-read on every DATA, so tests can switch to tempfail/permfail while the
    daemon stays connected.
    """

    host: str = HOST

    def __init__(self) -> None:
        self.root: Path | None = None
        self.port: int | None = None
        self.auth: tuple[str, str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("SmtpCapture has no root yet: call start() first")
        return self.root

    @property
    def messages_dir(self) -> Path:
        return self._root / "messages"

    @property
    def log_path(self) -> Path:
        return self._root / "smtp.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(
        self,
        root: Path | None = None,
        *,
        fail_mode: str | None = None,
        auth: tuple[str, str] | None = None,
        oauth2_introspection_url: str | None = None,
        mechanisms: tuple[str, ...] = ("XOAUTH2", "OAUTHBEARER"),
    ) -> SmtpCapture:
        """Start on a kernel-chosen port. `auth=(user, password)` makes AUTH PLAIN/LOGIN
        (without TLS) mandatory, for exercising a client's login path.
        `oauth2_introspection_url` makes AUTH mandatory with `mechanisms` (XOAUTH2,
        OAUTHBEARER) instead, the token checked at that RFC 7662 endpoint (TokenServer)."""
        if self.running:
            raise RuntimeError("SmtpCapture is already running")
        self.root = Path(root) if root is not None else _scratch_root("desk-smtp-")
        self.messages_dir.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        self.oauth2: dict[str, Any] | None = (
            {"introspect": oauth2_introspection_url, "mechanisms": list(mechanisms)}
            if oauth2_introspection_url else None)
        self.set_mode(fail_mode)
        # Port 0: the child binds and reports the port, so there is no pick-then-bind race.
        self._spawn(0)
        return self

    def start_again(self) -> None:
        """Come back on the same port after stop() (simulates an outage), keeping messages."""
        if self.port is None:
            raise RuntimeError("start_again() needs a previous start()")
        if not self.running:
            self._spawn(self.port)

    def _spawn(self, port: int) -> None:
        ready = self._root / "ready.json"
        ready.unlink(missing_ok=True)
        (self._root / "auth.json").write_text(json.dumps(getattr(self, "oauth2", None)
                                                         or self.auth))
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, __file__, "smtp-capture", str(self._root), self.host, str(port)],
                # the child exits on EOF here: an extra guard against orphans
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._proc = proc
        deadline = time.monotonic() + 15
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SMTP sink did not start:\n{_log_tail(self.log_path)}")
            time.sleep(0.01)
        self.port = int(json.loads(ready.read_text())["port"])
        _track(self)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        _untrack(self)
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        _terminate(proc)
        if self.port is not None:
            _wait_port_closed(self.host, self.port)

    def set_mode(self, mode: str | None) -> None:
        """None: accept; "tempfail": 451 to DATA; "permfail": 554 to DATA. Effective at once."""
        if mode not in SMTP_MODES:
            raise ValueError(f"mode must be one of {SMTP_MODES}, not {mode!r}")
        path = self._root / "mode"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(mode or "accept")
        tmp.replace(path)

    @property
    def mode(self) -> str | None:
        text = (self._root / "mode").read_text()
        return None if text == "accept" else text

    def messages(self) -> list[CapturedMail]:
        """Everything accepted so far (since the last clear()), oldest first."""
        result = []
        for path in sorted(self.messages_dir.glob("*.eml")):
            envelope_line, _, raw = path.read_bytes().partition(b"\n")
            envelope = json.loads(envelope_line)
            # Parsed from LF-normalised bytes: with the CRLFs of the wire format the email
            # package keeps "\r\n" inside get_content(). `raw` stays byte-exact.
            msg = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
            assert isinstance(msg, EmailMessage)
            result.append(CapturedMail(envelope["from"], envelope["rcpt_tos"], raw, msg, path))
        return result

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CapturedMail]:
        """Poll until at least `count` messages arrived; returns all of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"SMTP sink got {len(found)} message(s) within {timeout}s, expected {count}: "
                    f"{[m.msg['Subject'] for m in found]}"
                )
            time.sleep(0.02)

    def clear(self) -> None:
        for path in self.messages_dir.glob("*.eml"):
            path.unlink(missing_ok=True)


def _smtp_capture_main(root: Path, host: str, port: int) -> None:
    """Body of the SMTP sink child process."""
    import asyncio
    import warnings

    # aiosmtpd warns about AUTH without TLS on every connection: that is the point here
    warnings.simplefilter("ignore")

    from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

    messages = root / "messages"
    auth_cfg = json.loads((root / "auth.json").read_text())
    # continue numbering after a restart so file names stay unique and ordered
    counter = max((int(p.stem) for p in messages.glob("*.eml")), default=0)

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            nonlocal counter
            mode = (root / "mode").read_text().strip()
            if mode == "tempfail":
                return _TEMPFAIL_REPLY
            if mode == "permfail":
                return _PERMFAIL_REPLY
            counter += 1
            raw = envelope.original_content or b""
            assert isinstance(raw, bytes)
            head = json.dumps({"from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos})
            final = messages / f"{counter:08d}.eml"
            tmp = messages / f".{counter:08d}.tmp"
            tmp.write_bytes(head.encode() + b"\n" + raw)
            tmp.replace(final)
            return f"250 2.0.0 Ok: queued as {counter}"

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = [data.login.decode(), data.password.decode()] == auth_cfg
        return AuthResult(success=ok, handled=False)

    class OAuth2Handler(Handler):
        """AUTH XOAUTH2 / OAUTHBEARER, the token asked about at the introspection URL."""

        async def _bearer(self, server: SMTP, args: list[str]) -> AuthResult:
            import base64
            import urllib.parse
            import urllib.request

            blob = args[1] if len(args) > 1 else ""
            if not blob:
                blob = (await server.challenge_auth("", encode_to_b64=False)).decode()
            fields = dict(part.split("=", 1) for part in
                          base64.b64decode(blob).decode().split("\1") if "=" in part)
            head = base64.b64decode(blob).decode().split("\1")[0]
            user = fields.get("user") or head.partition("a=")[2].rstrip(",")
            token = fields.get("auth", "").removeprefix("Bearer ")
            request = urllib.request.Request(
                auth_cfg["introspect"], data=urllib.parse.urlencode({"token": token}).encode())
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.loads(response.read())
            ok = bool(answer.get("active")) and answer.get("username") == user
            return AuthResult(success=ok, handled=False, auth_data=user)

        async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
            return await self._bearer(server, args)

        async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
            return await self._bearer(server, args)

    def factory() -> SMTP:
        if isinstance(auth_cfg, dict):
            offered = set(auth_cfg["mechanisms"])
            return SMTP(
                OAuth2Handler(),
                enable_SMTPUTF8=True,
                hostname="sink.test",
                authenticator=lambda *a: AuthResult(success=False, handled=False),
                auth_required=True,
                auth_require_tls=False,
                auth_exclude_mechanism=[m for m in ("LOGIN", "PLAIN", "XOAUTH2", "OAUTHBEARER")
                                        if m not in offered],
            )
        if auth_cfg:
            return SMTP(
                Handler(),
                enable_SMTPUTF8=True,
                hostname="sink.test",
                authenticator=authenticator,
                auth_required=True,
                auth_require_tls=False,
            )
        return SMTP(Handler(), enable_SMTPUTF8=True, hostname="sink.test")

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, host, port)
        bound = server.sockets[0].getsockname()[1]
        ready = root / "ready.json"
        (root / "ready.tmp").write_text(json.dumps({"port": bound, "pid": os.getpid()}))
        (root / "ready.tmp").replace(ready)
        parent_gone = asyncio.Event()

        def on_stdin() -> None:
            if not os.read(0, 4096):
                loop.remove_reader(0)
                parent_gone.set()

        loop.add_reader(0, on_stdin)
        loop.add_signal_handler(signal.SIGTERM, parent_gone.set)
        await parent_gone.wait()
        server.close()

    asyncio.run(serve())


# --------------------------------------------------------------------------- OAuth2


class TokenServer:
    """An RFC 6749 token endpoint and an RFC 7662 introspection endpoint, in-process.

    Two listeners on loopback so the token endpoint can go down while introspection (what
    Dovecot and the SMTP sink ask) keeps answering, as with a real IdP outage and resource
    servers that still know the tokens they saw. The token endpoint serves
    client_credentials, refresh_token and the JWT-bearer grant of Google service accounts
    (the assertion's RS256 signature is checked when ``service_account_keys`` holds the
    account's public key), the authorization_code grant of ``codes`` (PKCE S256), and an
    OpenID discovery document under any path so msal accepts ``https://HOST:PORT/<tenant>``
    as its authority (msal needs https: pass ``tls=(cert, key)``).
    """

    host: str = HOST

    def __init__(self, *, lifetime: float = 3600.0, tls: tuple[Path, Path] | None = None
                 ) -> None:
        # client_id -> (secret, the mailbox its tokens are good for)
        self.clients: dict[str, tuple[str, str]] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> client_id
        self.service_accounts: dict[str, str] = {}  # client_email -> client_id
        # client_email -> PEM public key: the assertion's RS256 signature is then checked
        self.service_account_keys: dict[str, bytes] = {}
        # authorization code -> (client_id, PKCE code_challenge): what a consent screen gave
        self.codes: dict[str, tuple[str, str]] = {}
        self.lifetime = lifetime
        self.tls = tls
        self.issued: dict[str, tuple[str, float]] = {}  # token -> (user, expires, monotonic)
        self.requests: list[dict[str, str]] = []  # every token request's form
        self.token_port: int | None = None
        self.introspect_port: int | None = None
        self._servers: dict[str, Any] = {}
        self._counter = 0

    def add_client(self, client_id: str, secret: str, user: str) -> None:
        self.clients[client_id] = (secret, user)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.token_port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspection_url(self) -> str:
        return f"http://{self.host}:{self.introspect_port}/introspect"

    def revoke_tokens(self) -> None:
        """Every access token handed out so far stops working (expired, revoked)."""
        self.issued.clear()

    def start(self) -> TokenServer:
        self._serve("introspect")
        self._serve("token")
        _track(self)
        return self

    def stop_token_endpoint(self) -> None:
        """The token endpoint refuses connections until start_token_endpoint()."""
        server = self._servers.pop("token", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def start_token_endpoint(self) -> None:
        if "token" not in self._servers:
            self._serve("token")

    def stop(self) -> None:
        _untrack(self)
        self.stop_token_endpoint()
        server = self._servers.pop("introspect", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    # -- the endpoints ---------------------------------------------------------------
    def _issue(self, client_id: str, *, refresh: bool = False) -> tuple[int, dict[str, Any]]:
        self._counter += 1
        token = f"at-{client_id}-{self._counter}-{os.urandom(6).hex()}"
        self.issued[token] = (self.clients[client_id][1], time.monotonic() + self.lifetime)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer",
                                "expires_in": int(self.lifetime)}
        return 200, body

    def handle_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(form)
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            import base64

            payload = form.get("assertion", "..").split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            client_id = self.service_accounts.get(claims.get("iss", ""))
            if client_id is None:
                return 400, {"error": "invalid_grant", "error_description": "unknown account"}
            key = self.service_account_keys.get(claims["iss"])
            if key is not None:
                import jwt

                try:
                    # google-auth always names Google's endpoint as the audience.
                    jwt.decode(form["assertion"], key, algorithms=["RS256"],
                               audience="https://oauth2.googleapis.com/token")
                except jwt.InvalidTokenError as exc:
                    return 400, {"error": "invalid_grant",
                                 "error_description": f"Invalid JWT Signature: {exc}"}
            return self._issue(client_id)
        client_id = form.get("client_id", "")
        known = self.clients.get(client_id)
        if grant == "authorization_code":
            return self._exchange_code(form)
        if grant == "refresh_token":
            if self.refresh_tokens.get(form.get("refresh_token", "")) != client_id:
                return 400, {"error": "invalid_grant",
                             "error_description": "refresh token revoked or unknown"}
            if known is None or ("client_secret" in form
                                 and form["client_secret"] != known[0]):
                return 401, {"error": "invalid_client", "error_description": "bad client"}
            return self._issue(client_id)
        if grant != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": str(grant)}
        if known is None or form.get("client_secret") != known[0]:
            return 401, {"error": "invalid_client",
                         "error_description": "AADSTS7000215: Invalid client secret provided."}
        return self._issue(client_id)

    def _exchange_code(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """A code is good once, for its client, with the verifier of its challenge."""
        import base64
        import hashlib

        client_id, challenge = self.codes.pop(form.get("code", ""), ("", ""))
        known = self.clients.get(client_id)
        if known is None or form.get("client_id") != client_id:
            return 400, {"error": "invalid_grant", "error_description": "unknown code"}
        if form.get("client_secret") != known[0]:
            return 401, {"error": "invalid_client", "error_description": "bad client"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
            return 400, {"error": "invalid_grant", "error_description": "code_verifier"}
        if not form.get("redirect_uri"):
            return 400, {"error": "invalid_request", "error_description": "redirect_uri"}
        code, body = self._issue(client_id)
        refresh = f"rt-{client_id}-{os.urandom(8).hex()}"
        self.refresh_tokens[refresh] = client_id
        return code, {**body, "refresh_token": refresh}

    def handle_introspect(self, form: dict[str, str]) -> dict[str, Any]:
        found = self.issued.get(form.get("token", ""))
        if found is None or found[1] < time.monotonic():
            return {"active": False}
        return {"active": True, "username": found[0], "scope": "mail"}

    def _serve(self, which: str) -> None:
        import ssl
        import threading
        import urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if which == "token" and self.path.endswith("/.well-known/openid-configuration"):
                    tenant = self.path.strip("/").split("/")[0]
                    base = f"{owner.base_url}/{tenant}"
                    self._answer(200, {
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "issuer": f"{base}/v2.0"})
                else:
                    self._answer(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if which == "introspect":
                    self._answer(200, owner.handle_introspect(form))
                elif self.path.endswith("/token"):
                    self._answer(*owner.handle_token(form))
                else:
                    self._answer(404, {"error": "not_found"})

        port = getattr(self, f"{which}_port") or 0
        server = ThreadingHTTPServer((self.host, port), Handler)
        server.daemon_threads = True
        if which == "token" and self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        setattr(self, f"{which}_port", server.server_address[1])
        threading.Thread(target=server.serve_forever, name=f"token-server-{which}",
                         daemon=True).start()
        self._servers[which] = server


class ThrowawayCa:
    """A certificate authority made for one test run, and server certificates it signs."""

    def __init__(self, root: Path, name: str = "desk test CA") -> None:
        from datetime import UTC, datetime, timedelta

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self._name = subject
        self._cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256()))
        self.cert_path = root / "ca.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self.cert_path.chmod(0o644)

    def issue(self, name: str, hosts: Iterable[str]) -> tuple[Path, Path]:
        """(certificate, key) files for a server known by ``hosts`` (names or IPs)."""
        import ipaddress
        from datetime import UTC, datetime, timedelta

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        cert_path, key_path = self.root / f"{name}.pem", self.root / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        # Dovecot's master reads them as root; the login processes get them from it.
        cert_path.chmod(0o644)
        key_path.chmod(0o600)
        return cert_path, key_path


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(f"PostgreSQL server binaries are not installed: {INSTALL_HINT}")
    return found[-1].parent


_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class Postgres:
    """A throwaway PostgreSQL cluster (fsync off) on loopback with role and database `desk`."""

    host: str = HOST
    user: str = "desk"
    password: str = "secret"
    dbname: str = "desk"

    def __init__(self) -> None:
        self.root: Path | None = None
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("Postgres has no root yet: call start() first")
        return self.root

    @property
    def data_dir(self) -> Path:
        return self._root / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root / "run"

    @property
    def log_path(self) -> Path:
        return self._root / "postgres.log"

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, root: Path | None = None) -> Postgres:
        """initdb on first start, then run the server; after stop(), same port and data."""
        if self.running:
            raise RuntimeError("Postgres is already running")
        bindir = _pg_bin()
        _require_root("PostgreSQL")
        self.root = root = (
            Path(root) if root is not None else (self.root or _scratch_root("desk-pg-"))
        )
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        _ensure_traversable(root, "PostgreSQL (user `postgres`)")
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        self.socket_dir.mkdir(exist_ok=True)
        os.chown(self.socket_dir, pg.pw_uid, pg.pw_gid)
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self._initdb(bindir)

        pick = self.port is None
        for attempt in range(5):
            if pick:
                self.port = free_port()
            try:
                self._spawn(bindir)
                break
            except RuntimeError:
                if not pick or attempt == 4 or "could not bind" not in _log_tail(self.log_path, 10):
                    raise
        _track(self)
        if fresh:
            with self._admin() as conn:
                conn.execute(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}' CREATEDB")
                conn.execute(f"CREATE DATABASE {self.dbname} OWNER {self.user}")
        return self

    def _initdb(self, bindir: Path) -> None:
        result = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            capture_output=True,
            check=False,
            user="postgres",
            group="postgres",
            extra_groups=[],
            cwd=self._root,
        )
        if result.returncode:
            raise RuntimeError(f"initdb failed:\n{result.stdout.decode()}{result.stderr.decode()}")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            # Throwaway data: no durability; small footprint on a 2-core box.
            conf.write(f"""
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self.socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
log_min_messages = warning
""")

    def _spawn(self, bindir: Path) -> None:
        import psycopg

        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                # the port on the command line, not in postgresql.conf: a retry after a bind
                # race only has to change this argument
                [str(bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                # Popen's own setuid rather than `runuser`: postgres stays our direct child, so
                # PDEATHSIG and wait() work; extra_groups=[] drops root's supplementary groups
                user="postgres",
                group="postgres",
                extra_groups=[],
                cwd=self._root,
            )
        self._proc = proc
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                self._proc = None
                raise RuntimeError(
                    f"postgres exited with {proc.returncode}:\n{_log_tail(self.log_path)}"
                )
            try:
                with self._admin():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"postgres did not come up:\n{_log_tail(self.log_path)}"
                    ) from None
                time.sleep(0.05)

    def _admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        """Superuser connection over the unix socket (trust auth), autocommit."""
        # imported here: tests that never touch PostgreSQL need not have psycopg
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=2,
        )

    def create_database(self, name: str) -> str:
        """A new empty database owned by `desk`; returns its SQLAlchemy URL."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name must match {_DB_NAME.pattern}: {name!r}")
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {self.user}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop even if connections are still open (a leaked engine must not break teardown)."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name must match {_DB_NAME.pattern}: {name!r}")
        with self._admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Fast shutdown: SIGINT is exactly what `pg_ctl stop -m fast` sends."""
        proc, self._proc = self._proc, None
        _untrack(self)
        if proc is None:
            return
        _terminate(proc, signal.SIGINT, timeout=30)
        if self.port is not None:
            _wait_port_closed(self.host, self.port)

    def restart(self) -> None:
        self.stop()
        self.start()


# --------------------------------------------------------------------------- entry point

if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "smtp-capture":
        sys.exit(f"usage: {sys.argv[0]} smtp-capture ROOT HOST PORT")
    _smtp_capture_main(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))

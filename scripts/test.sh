#!/usr/bin/env bash
# The one command that runs the whole test suite, from any directory:
#
#   scripts/test.sh [pytest args...]      e.g. scripts/test.sh -m "not integration" -x
#
# On a fresh Debian 12 machine (as root) it first installs what the tests need: Dovecot
# (IMAP + LMTP) and PostgreSQL binaries from apt, and the project into .venv. The suite
# starts its own throwaway server instances on free loopback ports (tests/servers.py), so
# the system services those packages ship are kept from starting and never used.
# Exits with pytest's status; "no tests collected" (5) counts as a failure.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# --------------------------------------------------------------------- system packages
pkgs=()
# check files, not PATH: /usr/sbin is missing from PATH in some root shells
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || pkgs+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || pkgs+=(dovecot-lmtpd)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || pkgs+=(postgresql)
# scores every kind of mail desk sends (tests/integration/test_deliverability.py)
[ -x /usr/bin/spamassassin ] || pkgs+=(spamassassin)
if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  pkgs+=(python3-venv)   # Debian splits venv/ensurepip out of python3
fi

if [ ${#pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "need root to apt-get install ${pkgs[*]}"; exit 1; }
  log "installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' own dovecot/postgresql services from starting (policy-rc.d is honoured
  # by invoke-rc.d and deb-systemd-invoke); only if no policy is in place already.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    own_policy=1
    trap 'if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
  fi
  apt_install() {
    # wait for a concurrent apt/dpkg instead of failing on its lock
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${pkgs[@]}"
  }
  # `apt-get update` only when needed: fresh images have no package lists
  if ! apt_install; then
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt_install
  fi
  if [ "$own_policy" = 1 ]; then
    rm -f "$policy"
    own_policy=0
  fi
  # Belt and braces where systemd runs: the tests never use the system instances.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now dovecot.service postgresql.service >/dev/null 2>&1 || true
  fi
fi

# --------------------------------------------------------------------- Python env
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
# Re-install only when the project metadata changed (the install is editable, so code
# changes need nothing).
stamp=.venv/.desk-test-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "pip install -e '.[test]'"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  echo "$want" >"$stamp"
fi

# --------------------------------------------------------------------- checks
log "ruff check ."
.venv/bin/ruff check .

# Strict type checking over desk/ (settings in pyproject.toml [tool.mypy]).
log "mypy"
.venv/bin/mypy

log "pytest -q $*"
rc=0
.venv/bin/python -m pytest -q "$@" || rc=$?
if [ "$rc" = 5 ]; then
  log "pytest collected no tests: failing"
  exit 1
fi
exit "$rc"

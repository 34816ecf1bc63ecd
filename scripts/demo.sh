#!/usr/bin/env bash
# Install desk and show its main job on the embedded defaults (SQLite, Maildir in and out):
# example clients and staff are added, the sample emails in config/sample-mail/ are dropped
# into the inbox, `desk run --once` turns them into tickets and acknowledgements.
# Everything is written under ./demo (recreated on each run); nothing else is touched.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e . 2>&1 | grep -v -i warning || true
desk="$repo/.venv/bin/desk"

rm -rf demo && mkdir -p demo && cp -r config demo/config
cd demo
export DESK_CONFIG=config/desk.toml
# The config reads [desk] secret from $DESK_SECRET: a fresh one for this demo, kept in
# desk.env (owner-only) so later commands in ./demo can load it.
DESK_SECRET=$("$repo/.venv/bin/python" -c "import secrets; print(secrets.token_urlsafe(32))")
export DESK_SECRET
(umask 077 && printf 'export DESK_CONFIG=config/desk.toml\nexport DESK_SECRET=%s\n' \
  "$DESK_SECRET" > desk.env)

"$desk" init
"$desk" staff import config/staff.csv >/dev/null
"$desk" client import config/clients.csv >/dev/null
echo "== directory"
"$desk" staff list
"$desk" client list

mkdir -p var/mail/inbox/new var/mail/inbox/cur var/mail/inbox/tmp
for f in config/sample-mail/*.eml; do
  cp "$f" "var/mail/inbox/new/$(basename "$f" .eml)"
done
echo
echo "== desk run --once"
"$desk" run --once --log-level warning || true

echo
echo "== tickets"
"$desk" tickets list
echo
echo "== set aside: auto-generated mail that answers no ticket (no owner, no SLA clock;"
echo "   \`desk tickets promote REF\` makes one a ticket if a person should answer it)"
"$desk" tickets list --status auto
echo
echo "== quarantine (mail that could not be processed, kept with the reason)"
"$desk" quarantine list
echo
echo "== mail written to demo/var/mail/sent/new: acknowledgements to clients, notices to staff"
for f in var/mail/sent/new/*; do
  [ -e "$f" ] || continue
  "$repo/.venv/bin/python" - "$f" <<'PY'
import sys
from email import message_from_binary_file, policy
with open(sys.argv[1], "rb") as fh:
    m = message_from_binary_file(fh, policy=policy.default)
print("-" * 72)
for h in ("To", "Subject", "Reply-To", "In-Reply-To", "Auto-Submitted"):
    if h == "In-Reply-To" and not m[h]:
        continue
    print(f"{h}: {m[h]}")
print()
print(m.get_body(("plain",)).get_content().rstrip())
PY
done
echo
echo "Try: cd demo && . ./desk.env && ../.venv/bin/desk tickets show 1"
echo "     (also: sla status, sla explain 1, route --from you@example.com --subject 'Site down')"

"""Every kind of mail desk sends stays clear of spam folders: each template, text and HTML,
as the bytes desk composes, scores at most 0.5 in SpamAssassin's local rules
(scripts/spam_check.py: a throwaway desk's real mail, one spamassassin process for all).
A new template is checked without anyone adding it here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("spamassassin") is None,
                       reason="spamassassin is not installed (Debian: apt-get install "
                              "spamassassin; scripts/test.sh installs it)"),
]

MAX_SCORE = 0.5


def mail_templates() -> dict[str, set[str]]:
    """desk/templates/*.j2 that are mails of their own (not a base others extend), with
    their parts: {"txt"} or {"txt", "html"}."""
    files = sorted((REPO / "desk" / "templates").glob("*.j2"))
    bases = {m.group(1) for f in files
             for m in re.finditer(r"""extends\s+["']([^"']+)["']""", f.read_text())}
    kinds: dict[str, set[str]] = {}
    for f in files:
        if f.name not in bases:
            stem, _, part = f.name.removesuffix(".j2").rpartition(".")
            kinds.setdefault(stem, set()).add(part)
    return kinds


def test_every_kind_of_mail_scores_at_most_half_a_point() -> None:
    proc = subprocess.run([sys.executable, "scripts/spam_check.py", "--json",
                           "--max", str(MAX_SCORE)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode in (0, 1), f"spam_check.py failed:\n{proc.stderr}"
    result = json.loads(proc.stdout)
    assert result["missing"] == [], result["missing"]
    scored = {(m["template"], m["part"]) for m in result["mails"]}
    for template, parts in mail_templates().items():
        # The HTML mail where there is an HTML template, else the text-only one.
        assert (template, "html" if "html" in parts else "text") in scored, template
    over = [m for m in result["mails"] if m["score"] > MAX_SCORE]
    assert not over, "\n".join(
        f"{m['template']} ({m['part']}, from {m['source']}) scores {m['score']}: "
        f"{m['subject']}\n" + "\n".join(f"  {r['points']:5.1f} {r['rule']:<24} "
                                         f"{r['description']}" for r in m["rules"])
        for m in over)

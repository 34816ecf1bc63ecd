"""The layout in ARCHITECTURE.md is a contract, not a picture: these fail when a change
breaks it (an import up the layers, a module grown past a page count, the flat top level
filling up again)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DESK = REPO / "desk"


def test_imports_follow_the_layers() -> None:
    # The contract lives in pyproject.toml ([tool.importlinter]); lint-imports reads it.
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_module_outside_migrations_is_over_600_lines() -> None:
    big = {str(p.relative_to(REPO)): n for p in DESK.rglob("*.py")
           if "migrations" not in p.parts
           and (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert big == {}


def test_the_top_level_holds_at_most_ten_modules() -> None:
    flat = sorted(p.name for p in DESK.glob("*.py"))
    assert len(flat) <= 10, flat


def test_every_package_says_what_it_holds() -> None:
    # A new engineer reads the package docstrings first (ARCHITECTURE.md points to them).
    silent = [str(p.relative_to(REPO)) for p in DESK.rglob("__init__.py")
              if "migrations" not in p.parts and not p.read_text(encoding="utf-8").strip()]
    assert silent == []

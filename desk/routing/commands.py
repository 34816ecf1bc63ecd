"""Staff commands: one per line at the top of a reply (``#status waiting``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

KNOWN = ("note", "take", "assign", "status", "priority", "time", "eta", "cc", "approve",
         "reject", "estimate", "confirm", "attachments")
_COMMAND = re.compile(r"^#([A-Za-z][\w-]*)\b[ \t]*(.*)$")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    arg: str
    line: str


@dataclass(slots=True)
class ParsedReply:
    commands: list[Command]
    unknown: list[str]
    body: str


def parse_commands(text: str) -> ParsedReply:
    """Commands are the ``#word`` lines before the first other text; the rest is the body.
    ``#1 is fixed`` is not a command (a word must follow the ``#``)."""
    lines = text.strip("\n").split("\n")
    commands: list[Command] = []
    unknown: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        m = _COMMAND.match(line)
        if m is None:
            break
        name = m.group(1).lower()
        if name in KNOWN:
            commands.append(Command(name, m.group(2).strip(), line))
        else:
            unknown.append(line)
        i += 1
    return ParsedReply(commands, unknown, "\n".join(lines[i:]).strip())

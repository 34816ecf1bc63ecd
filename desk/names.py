"""Whom a mail greets, from a display name: "Dr. Rosa Elm" is Rosa, "ELM, ROSA" is Rosa,
"Mr. SMITH" is Mr. Smith, "Support Team" is nobody ("Hello,").

Pure text work at the bottom of the layers: every mail that greets someone, the client
reports and digests too, uses it. ``desk/work/people.py`` adds the directory's names."""

from __future__ import annotations

import re
import unicodedata

# Titles before a name, keyed lower-case without the dot; shown in this case, with the
# dot only if the writer used one ("Dr Elm" stays British, "Dr. Elm" American).
_TITLES = {t.lower(): t for t in (
    "Dr", "Mr", "Mrs", "Ms", "Miss", "Mx", "Prof", "Professor", "Sir", "Dame",
    "Herr", "Frau", "Mme", "Mlle", "Sr", "Sra", "Srta", "Dott", "Ing")}
# "M." is Monsieur; a bare "M" is an initial.
_DOTTED_ONLY = {"m": "M"}
# After a comma or at the end: not part of the name a greeting uses.
# (Not "Ma", "Le" or "Md": those are family and given names too.)
_SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "phd", "mba", "msc", "bsc", "esq", "cpa", "dds",
             "obe", "mbe"}
# Surname particles: lower case inside a name ("Jan van der Berg").
_PARTICLES = {"van", "von", "der", "den", "de", "del", "della", "di", "da", "du", "la", "le",
              "dos", "das", "ter", "ten", "zu", "af", "av", "bin", "ibn", "al"}
# A word like these makes the "name" a mailbox or an organisation: nobody to greet.
_NOT_A_PERSON = {
    "support", "team", "info", "information", "noreply", "no-reply", "donotreply",
    "do-not-reply", "admin", "administrator", "office", "sales", "billing", "accounts",
    "accounting", "contact", "enquiries", "inquiries", "webmaster", "service", "services",
    "helpdesk", "help", "desk", "notifications", "notification", "mailer-daemon",
    "postmaster", "reception", "marketing", "newsletter", "hr", "it", "customer",
    "orders", "shop", "store", "bookings", "booking", "staff", "department", "dept",
    "group", "ltd", "limited", "gmbh", "inc", "llc", "plc", "corp", "sarl", "bv", "ag",
    "the", "alerts", "system", "robot", "bot", "daemon", "server", "mail", "email",
    "news", "hello", "and", "und", "et", "&", "wordpress", "website", "web",
}
# Initials: "J.", "J.R.", a bare "J".
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]?|[^\W\d_]")
_BRACKETED = re.compile(r"\([^)]*\)|\[[^\]]*\]|<[^>]*>")
# "Rosa Elm via Support", "Rosa Elm | ACME", "Rosa Elm - ACME Ltd": the person comes first.
_ASIDE = re.compile(r"\s+(?:via|from|at|[|/@\u2013\u2014-])\s+.*$", re.IGNORECASE)
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb`"
_MAX = 40


def _bare(token: str) -> str:
    return token.lower().rstrip(".")


def _title(token: str) -> str | None:
    key = _bare(token)
    if key in _TITLES:
        return _TITLES[key] + ("." if token.endswith(".") else "")
    if key in _DOTTED_ONLY and token.endswith("."):
        return _DOTTED_ONLY[key] + "."
    return None


def _is_word(token: str) -> bool:
    """Letters (with their accents), and apostrophes or hyphens between them ("O'Neil",
    "Jean-Luc", "d'Arcy"), with an optional closing dot ("St."). Digits, underscores,
    "rosa.elm" or "{{" make no name."""
    pieces = re.split(r"['\u2019-]", token.removesuffix("."))
    return all(p and p[0].isalpha() and all(
        c.isalpha() or unicodedata.category(c).startswith("M") for c in p) for p in pieces)


def _is_suffix(token: str) -> bool:
    return _bare(token).replace(".", "") in _SUFFIXES


def _is_initial(token: str) -> bool:
    return _INITIALS.fullmatch(token) is not None


def _cased(token: str, *, in_surname: bool = False) -> str:
    """A word written all in capitals or all in lower case, as a name is written
    ("SMITH" -> "Smith", "MCDONALD" -> "McDonald", "o'neil" -> "O'Neil"); a word in
    mixed case is left as its owner wrote it ("McDonald", "DeVries", "van")."""
    letters = [c for c in token if c.isalpha()]
    if not (all(c.isupper() for c in letters) or all(c.islower() for c in letters)):
        return token
    if len(letters) == 1:
        return token.upper()
    if in_surname and token.lower() in _PARTICLES:
        return token.lower()
    parts = re.split(r"(['\u2019-])", token.lower())
    out = []
    for part in parts:
        if part.startswith("mc") and len(part) > 3:
            part = "Mc" + part[2:].capitalize()
        else:
            part = part[:1].upper() + part[1:]
        out.append(part)
    return "".join(out)


def _strip_suffixes(tokens: list[str]) -> list[str]:
    while len(tokens) > 1 and _is_suffix(tokens[-1]):
        tokens = tokens[:-1]
    return tokens


def _tokens(display_name: str) -> list[str] | None:
    """The words of a person's name in "Given Family" order, or None when the display
    name is no person's name at all."""
    name = unicodedata.normalize("NFC", " ".join(display_name.split()))
    name = name.strip(_QUOTES + " ")
    name = _BRACKETED.sub(" ", name)
    name = _ASIDE.sub("", name).strip(_QUOTES + " ,")
    if not name or "@" in name:
        return None  # no name, or the address written again as the name
    parts = [p.strip(_QUOTES + " ") for p in name.split(",")]
    # "Rosa Elm, PhD": a part that is only suffixes is no part of the name.
    parts = [p for p in parts if p and not all(_is_suffix(t) for t in p.split())]
    if not parts:
        return None
    # "Elm, Rosa" and "SMITH, JOHN": the family name first, then a comma.
    tokens = parts[1].split() + parts[0].split() if len(parts) >= 2 else parts[0].split()
    tokens = _strip_suffixes(tokens)
    if any(_bare(t) in _NOT_A_PERSON or t.lower() in _NOT_A_PERSON for t in tokens):
        return None
    if not all(_is_word(t) or _is_initial(t) for t in tokens):
        return None
    return tokens


def greeting_name(display_name: str) -> str:
    """The name after "Hello": a first name when there is one, else a title and the
    family name ("Dr. Elm"), else the name as written ("J. Smith"); "" when the display
    name names no person (a role mailbox, a company, an address, nothing)."""
    tokens = _tokens(display_name)
    if not tokens:
        return ""
    titles: list[str] = []
    while tokens and (title := _title(tokens[0])) is not None and len(tokens) > 1:
        titles.append(title)
        tokens = tokens[1:]
    if len(tokens) == 1 and _title(tokens[0]) is not None:
        return ""  # "Dr." alone: a title greets nobody
    if titles and (len(tokens) == 1 or tokens[0].lower() in _PARTICLES):
        given, family = [], tokens  # "Dr. Elm", "Mr. van der Berg": no given name
    elif len(tokens) == 1:
        given, family = tokens, []  # "Rosa": one word is taken as the given name
    else:
        # The family name starts at its first particle ("Jan van der Berg"), else it is
        # the last word.
        start = next((i for i, t in enumerate(tokens) if i > 0 and t.lower() in _PARTICLES),
                     len(tokens) - 1)
        given, family = tokens[:start], tokens[start:]
    first = next((t for t in given if not _is_initial(t)), None)
    if first is not None:
        result = _cased(first)
    elif titles and family:
        # Every title, as written together ("Frau Dr. Schmidt"); a particle is lower case
        # only before the family name proper ("Mr. van der Berg", but "Mr. Le").
        result = " ".join([*titles, *(_cased(t, in_surname=i < len(family) - 1)
                                      for i, t in enumerate(family))])
    else:
        # Initials only ("J. Smith"): the whole name is more polite than an initial.
        result = " ".join(_cased(t, in_surname=0 < i < len(tokens) - 1)
                          for i, t in enumerate(tokens))
    return result if len(result) <= _MAX else ""


def staff_greeting(name: str, email: str) -> str:
    """What a notice to a colleague says after "Hi": never empty."""
    return greeting_name(name) or (name.split()[0] if name.split() else email)

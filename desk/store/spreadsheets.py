"""The client overview and the staff list as CSV files (`desk client import`, `desk staff
import`): every problem of every row, each with its line, its column, the bad value and
what is allowed, so an admin fixes the file in one go.

Each good row is applied in a savepoint of the caller's transaction; the caller decides
whether to commit (everything good, or ``--partial``) or roll back (``--dry-run``, or a
bad row without ``--partial``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from desk.store.directory import (
    CAPACITY_ALLOWED,
    HOURS_ALLOWED,
    ClientSpec,
    DirectoryError,
    Problem,
    add_staff,
    split_contacts,
    staff_problems,
    upsert_client,
)
from desk.words import noun_for, plural

CLIENT_COLUMNS = ("name", "tier", "domains", "contacts", "account_manager", "project_manager",
                  "backup", "hours_per_month", "timezone", "sla_policy")
CLIENT_REQUIRED = ("name", "tier")
STAFF_COLUMNS = ("email", "name", "role", "capacity")
STAFF_REQUIRED = ("email", "name", "role")


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    problem: Problem

    def shown(self) -> str:
        where = f"column {self.problem.key}" if self.problem.key else ""
        return f"line {self.line}: error: {self.problem.shown(where)}"


@dataclass(slots=True)
class ImportReport:
    changes: list[tuple[int, str, list[str]]] = field(default_factory=list)  # line, who, what
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0  # data rows read (blank lines not counted)

    @property
    def bad_rows(self) -> int:
        return len({e.line for e in self.errors if e.line > 1})

    @property
    def file_unusable(self) -> bool:
        """The header itself is wrong: no row can be read."""
        return any(e.line == 1 for e in self.errors)

    def summary(self, applied: bool, dry_run: bool) -> str:
        """One line: what was applied (or would be), and what was not."""
        good = self.rows - self.bad_rows
        if self.file_unusable:
            return "nothing applied: the header row is wrong (see above)"
        if self.rows == 0:
            return "nothing to import: the file has no rows under its header"
        if dry_run:
            if not self.errors:
                return (f"dry run, nothing applied: {self._all(self.rows)} would be applied "
                        "without --dry-run")
            return (f"dry run, nothing applied: {self._bad()}; "
                    + (f"--partial would apply the other {plural(good, 'row')}" if good
                       else "no row could be applied"))
        if not self.errors:
            return f"applied {self._all(self.rows)}"
        if applied and good:
            return f"applied {plural(good, 'row')}; not applied: {self._bad()}"
        if applied:
            return f"nothing applied: {self._bad()}"
        return (f"nothing applied: {self._bad()}; fix "
                f"{'it' if self.bad_rows == 1 else 'them'} and import again"
                + (f", or use --partial to apply the other {plural(good, 'row')}" if good
                   else ""))

    @staticmethod
    def _all(n: int) -> str:
        return "1 row" if n == 1 else f"all {n} rows"

    def _bad(self) -> str:
        bad = self.bad_rows
        if bad < self.rows:
            return f"{plural(bad, 'row')} with errors"
        return "its one row has errors" if bad == 1 else f"all {bad} rows have errors"


def _header(fields: Sequence[str], columns: Sequence[str], required: Sequence[str]
            ) -> list[Problem]:
    found: list[Problem] = []
    missing = [c for c in required if c not in fields]
    if missing:
        found.append(Problem("", f"the header has no {_and(missing)} "
                             f"{noun_for(len(missing), 'column')}",
                             f"a first row naming the columns, with at least {_and(required)}"))
    unknown = [h for h in fields if h not in columns]
    if unknown:
        found.append(Problem("", f"unknown {noun_for(len(unknown), 'column')} "
                             f"{_and([repr(h) for h in unknown])} in the header",
                             f"columns from {', '.join(columns)}"))
    twice = sorted({h for h in fields if h and fields.count(h) > 1})
    if twice:
        found.append(Problem("", f"the header names {_and(twice)} twice",
                             "each column once"))
    return found


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


@dataclass(slots=True)
class _Row:
    """One data row: its cells by column, and what is wrong with its shape."""

    line: int
    cells: dict[str, str]
    problems: list[Problem]


def _rows(text: str, columns: Sequence[str], required: Sequence[str],
          report: ImportReport) -> list[_Row]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error):  # an empty file, or no CSV at all: no columns
        header = []
    while header and not header[-1]:  # a spreadsheet's empty last columns, saved as CSV
        header.pop()
    for problem in _header(header, columns, required):
        report.errors.append(RowError(1, problem))
    if report.file_unusable:
        return []
    rows: list[_Row] = []
    try:
        for raw in reader:
            if any(cell.strip() for cell in raw):  # blank lines are no rows
                rows.append(_row(raw, header, reader.line_num))
    except csv.Error as exc:  # a NUL byte, a quote never closed
        rows.append(_Row(reader.line_num, {}, [Problem(
            "", f"the file cannot be read on from here ({exc})",
            "a CSV file saved as text, each quoted cell's quotes closed")]))
    report.rows = len(rows)
    return rows


def _row(raw: list[str], header: list[str], line: int) -> _Row:
    problems: list[Problem] = []
    if len(raw) > len(header) and not any(cell.strip() for cell in raw[len(header):]):
        raw = raw[:len(header)]  # empty cells under columns nobody named
    if len(raw) != len(header):
        problems.append(Problem(
            "", f"the row has {plural(len(raw), 'column')} where the header has "
            f"{len(header)}", "a cell for every column of the header, empty where there "
            "is nothing to give (a comma for each)"))
    # A short row leaves its last columns out: they are not there to be checked, and the
    # row is reported as short rather than as having empty required cells.
    cells = {name: value.strip() for name, value in zip(header, raw, strict=False)}
    return _Row(line, cells, problems)


def _number(cells: dict[str, str], key: str, kind: Callable[[str], float],
            what: str, allowed: str, problems: list[Problem]) -> float | None:
    value = cells.get(key, "")
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        problems.append(Problem(key, f"{value!r} is not {what}", allowed))
        return None


def import_clients(session: Session, text: str, now: datetime | None = None, *,
                   policies: Collection[str] | None = None) -> ImportReport:
    """Upsert every row of the agency's client overview, reporting every problem of every
    row. ``policies``: the SLA policy names the configuration knows."""
    report = ImportReport()
    for row in _rows(text, CLIENT_COLUMNS, CLIENT_REQUIRED, report):
        cells, problems = row.cells, row.problems
        hours = _number(cells, "hours_per_month", float, "a number", HOURS_ALLOWED, problems)
        spec = ClientSpec(
            name=cells.get("name", ""),
            tier=cells.get("tier", ""),
            domains=[d for d in cells.get("domains", "").replace(";", " ").replace(
                ",", " ").split()],
            contacts=split_contacts(cells.get("contacts")),
            account_manager=cells.get("account_manager") or None,
            project_manager=cells.get("project_manager") or None,
            backup=cells.get("backup") or None,
            hours_per_month=hours,
            timezone=cells.get("timezone") or None,
            sla_policy=cells.get("sla_policy") or None,
        )
        problems += [p for p in spec.problems(session, policies=policies)
                     if p.key in cells]  # a column the row does not reach is no problem of it
        problems.sort(key=partial(_column_order, CLIENT_COLUMNS))
        _apply(session, report, row.line, spec.name, problems,
               partial(_upsert_client, session, spec, now, policies))
    return report


def import_staff(session: Session, text: str, now: datetime | None = None) -> ImportReport:
    """Add or update every row of the staff list, reporting every problem of every row."""
    report = ImportReport()
    for row in _rows(text, STAFF_COLUMNS, STAFF_REQUIRED, report):
        cells, problems = row.cells, row.problems
        capacity = _number(cells, "capacity", int, "a whole number", CAPACITY_ALLOWED,
                           problems)
        email, name, role = (cells.get("email", ""), cells.get("name", ""),
                             cells.get("role", ""))
        cap = int(capacity) if capacity is not None else None
        problems += [p for p in staff_problems(email, name, role, cap) if p.key in cells]
        problems.sort(key=partial(_column_order, STAFF_COLUMNS))
        _apply(session, report, row.line, email.strip().lower(), problems,
               partial(_add_staff, session, email, name, role, cap, now))
    return report


def _column_order(columns: Sequence[str], problem: Problem) -> int:
    """Problems of a row in the order of its cells, the row's own shape first."""
    return columns.index(problem.key) + 1 if problem.key in columns else 0


def _upsert_client(session: Session, spec: ClientSpec, now: datetime | None,
                   policies: Collection[str] | None) -> list[str]:
    return upsert_client(session, spec, now, policies=policies)[1]


def _add_staff(session: Session, email: str, name: str, role: str, capacity: int | None,
               now: datetime | None) -> list[str]:
    _, created = add_staff(session, email, name, role, capacity, now)
    return ["added" if created else "updated"]


def _apply(session: Session, report: ImportReport, line: int, who: str,
           problems: list[Problem], apply: Callable[[], list[str]]) -> None:
    if not problems:
        try:
            # One row's changes stand or fall together; whether the good rows are kept when
            # another is bad is the caller's decision, for the whole file.
            with session.begin_nested():
                changes = apply()
            report.changes.append((line, who, changes))
            return
        except DirectoryError as exc:
            problems = exc.problems
    report.errors += [RowError(line, p) for p in problems]

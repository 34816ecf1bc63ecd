"""Spreadsheet imports and `client add` say what is wrong in the admin's words: every
problem of every row, with its line, its column, the bad value and what is allowed; and a
client's managers are active staff in a role that fits."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.store.directory import (
    ClientSpec,
    DirectoryError,
    add_staff,
    split_contacts,
    upsert_client,
)
from desk.store.models import Client, Contact, Staff
from desk.store.spreadsheets import ImportReport, import_clients, import_staff

HEADER = ("name,tier,domains,contacts,account_manager,project_manager,backup,hours_per_month,"
          "timezone\n")


def shown(report: ImportReport) -> list[str]:
    return [e.shown() for e in report.errors]


def test_every_problem_of_every_row_is_reported_with_line_column_value_and_allowed(
        session: Session) -> None:
    report = import_clients(session, HEADER
                            + "Good Co,retainer,good.test,,alice@agency.test,,,,\n"
                            + "Bad Co,gold,bad.test,not-an-address,,,,ten,Mars/Base\n"
                            + "Worse Co,project,worse.test,,,,,lots,\n")
    lines = shown(report)
    assert lines == [
        "line 3: error: unknown tier 'gold' (column tier): one of retainer, project, "
        "post_project, hosting, hosting_sla, support_sla",
        "line 3: error: 'not-an-address' is not an email address (column contacts): an "
        "address such as name@example.com",
        "line 3: error: 'ten' is not a number (column hours_per_month): a number of hours from "
        "0 to 744, such as 10 or 7.5",
        "line 3: error: unknown time zone 'Mars/Base' (column timezone): an IANA time zone "
        "such as Europe/London or America/New_York",
        "line 4: error: 'lots' is not a number (column hours_per_month): a number of hours "
        "from 0 to 744, such as 10 or 7.5",
    ]
    assert not any("could not convert" in x or "invalid literal" in x for x in lines)
    assert [(line, name) for line, name, _ in report.changes] == [(2, "Good Co")]
    assert report.rows == 3 and report.bad_rows == 2


def test_staff_rows_name_the_column_and_the_bad_value(session: Session) -> None:
    report = import_staff(session, "email,name,role,capacity\n"
                                   "kim@agency.test,Kim,junior_engineer,lots\n"
                                   "nobody,,wizard,-1\n")
    assert shown(report) == [
        "line 2: error: 'lots' is not a whole number (column capacity): a whole number of "
        "open tickets from 0 to 10,000, such as 15 (empty: no limit)",
        "line 3: error: 'nobody' is not an email address (column email): an address such "
        "as name@example.com",
        "line 3: error: the name is empty (column name): the person's name, such as Sam Lee",
        "line 3: error: unknown role 'wizard' (column role): one of account_manager, "
        "project_manager, senior_engineer, junior_engineer",
        "line 3: error: capacity -1 is negative (column capacity): a whole number of open "
        "tickets from 0 to 10,000, such as 15 (empty: no limit)",
    ]


def test_a_short_row_says_how_many_columns_it_has_not_that_its_tier_is_empty(
        session: Session) -> None:
    report = import_clients(session, HEADER + "Solo Co\n")
    assert shown(report) == [
        "line 2: error: the row has 1 column where the header has 9: a cell for every "
        "column of the header, empty where there is nothing to give (a comma for each)"]
    report = import_staff(session, "email,name,role,capacity\nkim@agency.test,Kim\n")
    assert [e.problem.message for e in report.errors] == [
        "the row has 2 columns where the header has 4"]


def test_a_wrong_header_is_reported_on_line_1_and_no_row_is_read(session: Session) -> None:
    report = import_clients(session, "name,tier,colour\nA,retainer,blue\n")
    assert shown(report) == [
        "line 1: error: unknown column 'colour' in the header: columns from name, tier, "
        "domains, contacts, account_manager, project_manager, backup, hours_per_month, "
        "timezone, sla_policy"]
    assert report.file_unusable and report.changes == []


@pytest.mark.parametrize("column, person, problem", [
    ("account_manager", "paul@agency.test", "paul@agency.test is a project manager"),
    ("account_manager", "sam@agency.test", "sam@agency.test is a senior engineer"),
    ("project_manager", "jo@agency.test", "jo@agency.test is a junior engineer"),
    ("project_manager", "sam@agency.test", "sam@agency.test is a senior engineer"),
    ("backup", "jo@agency.test", "jo@agency.test is a junior engineer"),
    ("backup", "zoe@agency.test", "zoe@agency.test is not on the staff list"),
    ("account_manager", "gone@agency.test", "gone@agency.test is inactive (left the agency)"),
])
def test_managers_must_be_active_staff_in_a_fitting_role(
        session: Session, column: str, person: str, problem: str) -> None:
    add_staff(session, "gone@agency.test", "Gone", "account_manager")
    session.scalars(select(Staff).where(Staff.email == "gone@agency.test")).one().active = False
    cells = {"account_manager": "", "project_manager": "", "backup": "", column: person}
    report = import_clients(session, HEADER + f"New Co,retainer,new.test,,"
                            f"{cells['account_manager']},{cells['project_manager']},"
                            f"{cells['backup']},,\n")
    [error] = report.errors
    assert (error.line, error.problem.key, error.problem.message) == (2, column, problem)
    assert "must be an active staff member with role" in error.problem.allowed
    # `desk client add` refuses the same, with the same words.
    with pytest.raises(DirectoryError) as refused:
        upsert_client(session, ClientSpec("New Co", "retainer", **{column: person}))
    assert [p.message for p in refused.value.problems] == [problem]


def test_fitting_roles_are_accepted(session: Session) -> None:
    # An account manager may also be a client's project manager; a senior engineer or a
    # project manager may be the backup.
    client, _ = upsert_client(session, ClientSpec(
        "Fit Co", "retainer", account_manager="alice@agency.test",
        project_manager="alice@agency.test", backup="sam@agency.test"))
    assert (client.project_manager, client.backup) == ("alice@agency.test", "sam@agency.test")


def test_client_add_reports_every_problem_at_once(session: Session) -> None:
    with pytest.raises(DirectoryError) as refused:
        upsert_client(session, ClientSpec("Many Co", "gold", timezone="Nowhere/City",
                                          account_manager="jo@agency.test",
                                          sla_policy="platinum"),
                      policies={"retainer", "support_sla"})
    assert [p.key for p in refused.value.problems] == [
        "tier", "timezone", "sla_policy", "account_manager"]
    assert session.scalar(select(Client).where(Client.name == "Many Co")) is None


def test_contacts_keep_their_display_names(session: Session) -> None:
    client, changes = upsert_client(session, ClientSpec(
        "Elm Co", "retainer", contacts=["Rosa Elm <Rosa@Example.com>", "ops@example.com"]))
    names = {c.email: c.name for c in client.contacts}
    assert names == {"rosa@example.com": "Rosa Elm", "ops@example.com": ""}
    assert "contact Rosa Elm <rosa@example.com>" in changes
    # A plain address later never erases the name; a new name replaces it.
    upsert_client(session, ClientSpec("Elm Co", "retainer", contacts=["rosa@example.com"]))
    assert session.scalar(select(Contact.name).where(Contact.email == "rosa@example.com")) \
        == "Rosa Elm"
    _, changes = upsert_client(session, ClientSpec(
        "Elm Co", "retainer", contacts=['"Elm, Rosa" <rosa@example.com>']))
    assert changes == ["contact rosa@example.com: name Rosa Elm -> Elm, Rosa"]


def test_a_csv_contacts_cell_takes_names_and_plain_addresses(session: Session) -> None:
    report = import_clients(session, HEADER + 'Cell Co,retainer,cell.test,'
                            '"Rosa Elm <rosa@cell.test>; Tom <tom@cell.test>, a@cell.test '
                            'b@cell.test",,,,,\n')
    assert report.errors == []
    client = session.scalars(select(Client).where(Client.name == "Cell Co")).one()
    assert {c.email: c.name for c in client.contacts} == {
        "rosa@cell.test": "Rosa Elm", "tom@cell.test": "Tom", "a@cell.test": "",
        "b@cell.test": ""}


@pytest.mark.parametrize("cell, parts", [
    ("a@x.test;b@x.test", ["a@x.test", "b@x.test"]),
    ("a@x.test, b@x.test c@x.test", ["a@x.test", "b@x.test", "c@x.test"]),
    ('"Elm, Rosa" <r@x.test>; Tom Lee <t@x.test>', ['"Elm, Rosa" <r@x.test>',
                                                   "Tom Lee <t@x.test>"]),
    ("", []),
])
def test_split_contacts(cell: str, parts: list[str]) -> None:
    assert split_contacts(cell) == parts


def test_values_no_month_or_person_can_have_are_row_errors(session: Session) -> None:
    report = import_clients(session, "name,tier,hours_per_month\n"
                                     "A Co,retainer,inf\nB Co,retainer,1e400\nC Co,retainer,800\n")
    assert report.bad_rows == 3
    assert all(e.problem.key == "hours_per_month" for e in report.errors), report.errors
    staff = import_staff(session, "email,name,role,capacity\n"
                                  "sam@agency.test,Sam,senior_engineer,99999999999999999999999\n")
    [error] = staff.errors
    assert error.problem.key == "capacity" and "more than anyone can own" in error.shown()


def test_a_spreadsheets_empty_last_columns_are_no_columns(session: Session) -> None:
    report = import_staff(session, "email,name,role,capacity,,\n"
                                   "sam@agency.test,Sam Senior,senior_engineer,15,,\n"
                                   "jo@agency.test,Jo Junior,junior_engineer,8\n")
    assert report.errors == [] and report.rows == 2

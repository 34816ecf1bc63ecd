"""The directory and dry-run commands as an admin meets them: both imports all or nothing
(unless --partial) with the exit code telling whether everything was applied, contacts
with their names, managers in a fitting role, `desk route` speaking of what *would*
happen, and counted nouns that agree with their numbers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import DeskEnv, make_mail

STAFF_HEADER = "email,name,role,capacity\n"
CLIENT_HEADER = ("name,tier,domains,contacts,account_manager,project_manager,backup,"
                 "hours_per_month,timezone\n")


def staff_emails(env: DeskEnv) -> set[str]:
    return {s["email"] for s in env.desk_json("staff", "list")}


def test_staff_import_is_all_or_nothing_like_client_import(env: DeskEnv) -> None:
    csv = env.root / "people.csv"
    csv.write_text(STAFF_HEADER + "kim@agency.test,Kim Key,junior_engineer,8\n"
                                  "lee@agency.test,Lee,wizard,lots\n")
    before = staff_emails(env)

    dry = env.desk("staff", "import", str(csv), "--dry-run", check=False)
    assert dry.returncode == 1 and "line 2: kim@agency.test: added" in dry.stdout
    assert "dry run, nothing applied" in dry.stdout
    assert staff_emails(env) == before

    plain = env.desk("staff", "import", str(csv), check=False)
    assert plain.returncode == 1
    assert plain.stdout.strip().splitlines()[-1].startswith("nothing applied: 1 row with "
                                                            "errors")
    assert "unknown role 'wizard' (column role)" in plain.stderr
    assert "'lots' is not a whole number (column capacity)" in plain.stderr
    assert staff_emails(env) == before  # the good row waited for the bad one

    partial = env.desk("staff", "import", str(csv), "--partial", check=False)
    assert partial.returncode == 1  # not everything in the file was applied
    assert "applied 1 row; not applied: 1 row with errors" in partial.stdout
    assert staff_emails(env) == before | {"kim@agency.test"}

    csv.write_text(STAFF_HEADER + "lee@agency.test,Lee,senior_engineer,\n")
    good = env.desk("staff", "import", str(csv))
    assert good.returncode == 0 and good.stdout.strip().endswith("applied 1 row")


def test_an_import_where_every_row_fails_never_says_applied(env: DeskEnv) -> None:
    csv = env.root / "people.csv"
    csv.write_text(STAFF_HEADER + "nobody,,wizard,\nx,,,\n")
    for flags in ((), ("--partial",)):
        proc = env.desk("staff", "import", str(csv), *flags, check=False)
        assert proc.returncode == 1
        assert "nothing applied" in proc.stdout and "\napplied" not in f"\n{proc.stdout}"


def test_client_import_partial_exits_1_when_a_row_was_left_out(env: DeskEnv) -> None:
    csv = env.root / "clients.csv"
    csv.write_text(CLIENT_HEADER
                   + "Acme,retainer,acme.test,Rosa Elm <rosa@acme.test>,alice@agency.test,"
                     "paul@agency.test,sam@agency.test,10,Europe/Paris\n"
                   + "Wrong Co,project,wrong.test,,paul@agency.test,jo@agency.test,,,\n"
                   + "Short Co\n")
    plain = env.desk("client", "import", str(csv), check=False)
    assert plain.returncode == 1 and "Acme" not in plain.stdout
    assert plain.stderr.splitlines() == [
        "line 3: error: paul@agency.test is a project manager (column account_manager): "
        "the account manager must be an active staff member with role account_manager",
        "line 3: error: jo@agency.test is a junior engineer (column project_manager): the "
        "project manager must be an active staff member with role project_manager or "
        "account_manager",
        "line 4: error: the row has 1 column where the header has 9: a cell for every "
        "column of the header, empty where there is nothing to give (a comma for each)",
    ]
    partial = env.desk("client", "import", str(csv), "--partial", check=False)
    assert partial.returncode == 1
    assert "applied 1 row; not applied: 2 rows with errors" in partial.stdout
    acme = next(c for c in env.desk_json("client", "list") if c["name"] == "Acme")
    assert acme["contact_names"] == {"rosa@acme.test": "Rosa Elm"}


def test_client_add_stores_the_contacts_name_and_refuses_unfit_managers(env: DeskEnv
                                                                        ) -> None:
    env.desk("client", "add", "Elm Co", "--tier", "retainer", "--domain", "elm.test",
             "--contact", "Rosa Elm <rosa@elm.test>", "--contact", "ops@elm.test")
    elm = next(c for c in env.desk_json("client", "list") if c["name"] == "Elm Co")
    assert elm["contacts"] == ["ops@elm.test", "rosa@elm.test"]
    assert elm["contact_names"] == {"rosa@elm.test": "Rosa Elm"}

    refused = env.desk("client", "add", "Elm Co", "--tier", "retainer", "--account-manager",
                       "sam@agency.test", "--backup", "jo@agency.test", "--timezone",
                       "Europe/Londn", check=False)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "desk: unknown time zone 'Europe/Londn' (--timezone): an IANA time zone such as "
        "Europe/London or America/New_York",
        "desk: sam@agency.test is a senior engineer (--account-manager): the account "
        "manager must be an active staff member with role account_manager",
        "desk: jo@agency.test is a junior engineer (--backup): the backup manager must be "
        "an active staff member with role account_manager, project_manager or "
        "senior_engineer",
    ]


def test_route_says_what_would_happen_never_that_it_happened(env: DeskEnv) -> None:
    out = env.desk("route", "--from", "a@client.test", "--subject", "Site down").stdout
    assert "would:\n" in out.splitlines()[0] + "\n"
    assert "  queue an acknowledgement to a@client.test" in out
    assert "  queue a new-ticket notice to paul@agency.test and sam@agency.test" in out
    assert "acknowledged     would queue an acknowledgement to a@client.test" in out
    assert "queued to" not in out and "acknowledgement: yes" not in out
    assert out.rstrip().endswith("Dry run: nothing was created or sent.")
    data = json.loads(env.desk("route", "--from", "a@client.test", "--subject", "Site down",
                               "--json").stdout)
    assert data["would"][2] == "queue an acknowledgement to a@client.test"
    assert env.tickets() == []


def test_counted_nouns_agree_with_their_numbers(env: DeskEnv, tmp_path: Path) -> None:
    env.drop(make_mail(sender="client@client.test", subject="Site down"))
    env.desk("run", "--once")
    # Sam now works one open ticket: the next P1's explanation counts it.
    out = env.desk("route", "--from", "a@client.test", "--subject", "Site down again").stdout
    assert "least loaded -> sam@agency.test (1 open ticket)" in out
    export = env.desk("privacy", "export", "client@client.test", "--out",
                      str(tmp_path / "export.json"))
    assert ": 1 ticket, " in export.stderr

"""`helpdesk check-email` and `helpdesk import`, run through Flask's CLI runner."""
from __future__ import annotations

import csv
import io
import json

from sqlalchemy import func, select

from helpdesk.credentials import create_credential
from helpdesk.models import Recipient, db


def run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


# --- check-email -------------------------------------------------------------------------------

def test_valid_addresses_exit_0_with_one_line_each(app):
    result = run(app, "check-email", "ann@example.com", "Bob@Example.ORG")
    assert result.exit_code == 0, result.output
    assert result.stdout == "ann@example.com: valid\nBob@Example.ORG: valid\n"


def test_a_likely_typo_asks_did_you_mean_and_exits_1(app):
    result = run(app, "check-email", "ann@example.com", "grace@gmial.com")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "ann@example.com: valid",
        "grace@gmial.com: valid; did you mean grace@gmail.com? (confidence 80%)",
    ]


def test_an_invalid_address_says_why_and_exits_1(app):
    result = run(app, "check-email", "not an address", "ann@gmail.con")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "not an address: invalid: An email address must have an @-sign.",
        "ann@gmail.con: valid; did you mean ann@gmail.com? (confidence 80%)",
    ]


def test_dash_reads_one_address_a_line_from_stdin(app):
    result = run(app, "check-email", "-", input="ann@example.com\n\n  bob@hotmial.com  \n")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "ann@example.com: valid",
        "bob@hotmial.com: valid; did you mean bob@hotmail.com? (confidence 80%)",
    ]


def test_json_prints_one_object_a_line_with_the_api_fields(app):
    result = run(app, "check-email", "--json", "ann@example.com", "bob@gmial.com", "x@")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"input": "ann@example.com", "valid": True,
                        "normalized": "ann@example.com", "error": None, "suggestion": None,
                        "confidence": None}
    assert lines[1]["suggestion"] == "bob@gmail.com" and lines[1]["valid"] is True
    assert lines[2]["valid"] is False and lines[2]["error"]
    assert all(list(line) == ["input", "valid", "normalized", "error", "suggestion",
                              "confidence"] for line in lines)


def test_control_characters_are_shown_escaped_never_sent_to_the_terminal(app):
    result = run(app, "check-email", "ann\x1b[31m@example.com")
    assert "\x1b" not in result.stdout
    assert result.stdout.startswith("ann\\x1b[31m@example.com: invalid: ")


def test_no_address_is_a_usage_error(app):
    result = run(app, "check-email")
    assert result.exit_code == 2
    assert "give one or more addresses, or -" in result.stderr


def test_domains_already_delivered_to_are_not_taken_for_typos(app, sink):
    assert run(app, "check-email", "bob@yaho.com").exit_code == 1  # did you mean yahoo.com?
    create_credential("Course", [{"name": "Ann", "email": "ann@yaho.com"}], state="published")
    assert db.session.scalar(select(Recipient.status)) == "not_opened"  # the sink took it
    assert run(app, "check-email", "bob@yaho.com").exit_code == 1  # known domains: a minute old
    app.extensions.pop("helpdesk_known_domains")
    result = run(app, "check-email", "bob@yaho.com")
    assert (result.exit_code, result.stdout) == (0, "bob@yaho.com: valid\n")


def test_plugins_add_known_domains(app):
    from helpdesk import hookimpl
    from helpdesk.plugins import plugin_manager

    class RegionalProvider:
        @hookimpl
        def helpdesk_known_domains(self):
            return ["GMIAL.com "]

    plugin_manager(app).register(RegionalProvider())
    app.extensions.pop("helpdesk_known_domains", None)
    assert run(app, "check-email", "ann@gmial.com").stdout == "ann@gmial.com: valid\n"


# --- import ------------------------------------------------------------------------------------

def test_import_asks_about_typos_then_prints_every_verdict_and_a_summary(app, sink, tmp_path):
    credential = create_credential("Course", [{"name": "Ann", "email": "ann@example.com"}])
    path = tmp_path / "people.csv"
    path.write_bytes("\ufeffFull name;E-mail\nAnn;ann@example.com\nBob;bob@gmial.com\n;\n"
                     "Cid;cid@example.com\nDee;dee\n".encode())
    asked = run(app, "import", str(path), "--credential", str(credential.id))
    assert asked.exit_code == 2  # a question waits for an answer
    assert asked.stdout.splitlines() == [
        "line 3: bob@gmial.com: did you mean bob@gmail.com?",
        "1 likely typo(s): nothing was imported; run again with --typos suggest or --typos keep."]
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 1
    refused = tmp_path / "refused.csv"
    result = run(app, "import", str(path), "--credential", str(credential.id),
                 "--typos", "suggest", "--refused-csv", str(refused))
    assert result.exit_code == 1  # a row was left out
    assert result.stdout.splitlines() == [
        "line 2: duplicate (not added again): already a recipient of this credential",
        "line 4: empty (skipped): empty row",
        "line 6: not a usable address (kept, never emailed): An email address must have an "
        "@-sign.",
        "Credential 1 (Course): 3 imported of 5 rows: 1 not a usable address (kept, never "
        "emailed), 1 duplicate (not added again), 2 accepted, 1 empty (skipped).",
    ]
    assert "Checking rows" in result.stderr and "Importing" in result.stderr  # the bars
    db.session.expire_all()
    assert {r.email for r in credential.recipients} == {
        "ann@example.com", "bob@gmail.com", "cid@example.com", "dee"}
    rows = list(csv.reader(io.StringIO(refused.read_text(encoding="utf-8-sig"))))
    assert [row[:2] for row in rows] == [["line", "reason"],
                                         ["2", "already a recipient of this credential"]]


def test_import_of_clean_rows_exits_0_and_sends_when_published(app, sink, tmp_path):
    credential = create_credential("Course", [], state="published")
    path = tmp_path / "people.csv"
    path.write_text("name,email\nAnn,ann@example.com\nBob,bob@example.org\n")
    result = run(app, "import", str(path), "--credential", str(credential.id))
    assert result.exit_code == 0, result.output
    assert result.stdout == ("Credential 1 (Course): 2 imported of 2 rows: 2 accepted. "
                             "2 emails queued.\n")
    assert sorted(m.recipients[0] for m in sink.messages) == ["ann@example.com",
                                                              "bob@example.org"]


def test_import_of_a_broken_file_imports_nothing(app, sink, tmp_path):
    credential = create_credential("Course", [])
    path = tmp_path / "people.csv"
    path.write_bytes("name,email\nAnn,ann@example.com\nZoë,zoe@example.com\n".encode("cp1252"))
    result = run(app, "import", str(path), "--credential", str(credential.id))
    assert result.exit_code == 1
    assert "Error: nothing was imported: line 3: not UTF-8 (byte 0xEB)" in result.stderr
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0


def test_import_reads_stdin_and_needs_an_existing_credential(app, sink):
    result = run(app, "import", "-", "--credential", "99", input="name,email\n")
    assert result.exit_code == 1 and "no credential 99" in result.stderr
    credential = create_credential("Course", [])
    result = run(app, "import", "-", "--credential", str(credential.id),
                 input="name,email\nAnn,ann@example.com\n")
    assert result.exit_code == 0, result.output


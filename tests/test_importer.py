"""CSV import: reading (pure), writing (one transaction), and the web upload."""
from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest
from sqlalchemy import func, select

from helpdesk import importer
from helpdesk.credentials import create_credential
from helpdesk.importer import IMPORTED, REFUSED, SKIPPED, WARNED, BrokenFile, read_rows
from helpdesk.models import Delivery, Recipient, db


def outcomes(parsed) -> list[tuple[int, str, str | None]]:
    return [(row.line, row.outcome, row.reason) for row in parsed.rows]


# --- reading -----------------------------------------------------------------------------------

def test_a_plain_file_is_read_row_by_row_with_line_numbers():
    parsed = read_rows(b"name,email\nAnn Lee,ann@example.com\nBob Ray,Bob@Example.com\n")
    assert parsed.delimiter == ","
    assert [(r.line, r.outcome, r.name, r.email) for r in parsed.rows] == [
        (2, IMPORTED, "Ann Lee", "ann@example.com"),
        (3, IMPORTED, "Bob Ray", "Bob@example.com"),  # the domain is normalised
    ]


def test_a_byte_order_mark_and_semicolons_are_understood():
    data = "\ufeffName;E-mail\r\nZoë Ärger;zoe@example.com\r\n".encode()
    parsed = read_rows(data)
    assert parsed.delimiter == ";"
    assert parsed.header == ("Name", "E-mail")  # no BOM left on the first header
    assert [(r.name, r.email) for r in parsed.rows] == [("Zoë Ärger", "zoe@example.com")]


def test_a_semicolon_file_with_commas_in_its_names_is_still_semicolon_separated():
    parsed = read_rows(b"Full name;Email address\n\"Lee, Ann\";ann@example.com\n"
                       b"Ray, Bob;bob@example.com\n")
    assert parsed.delimiter == ";"
    assert [r.name for r in parsed.rows] == ["Lee, Ann", "Ray, Bob"]


@pytest.mark.parametrize("name_header, email_header", [
    ("Name", "Email"), ("Full name", "E-mail"), ("recipient name", "Email address"),
    ("NAME", "mail"), (" Display Name ", "E-Mail-Adresse"), ("Nom", "Courriel"),
])
def test_header_names_are_matched_loosely(name_header, email_header):
    data = f"id,{name_header},phone,{email_header}\n7,Ann Lee,555,ann@example.com\n".encode()
    row, = read_rows(data).rows
    assert (row.name, row.email, row.outcome) == ("Ann Lee", "ann@example.com", IMPORTED)


def test_first_and_last_name_columns_make_the_name():
    row, = read_rows(b"First name,Last name,Email\nAnn,Lee,ann@example.com\n").rows
    assert row.name == "Ann Lee"


@pytest.mark.parametrize("data, message", [
    (b"Name,Email,E-mail address\nAnn,a@example.com,b@example.com\n",
     "line 1: ambiguous header: column 2 ('Email') and column 3 ('E-mail address') both look "
     "like the email column"),
    (b"Name,Phone\nAnn,555\n", "line 1: no email column in the header (found 'Name', 'Phone')"),
    (b"Email,Phone\nann@example.com,555\n", "line 1: no name column in the header"),
    (b"Ann Lee,ann@example.com\n", "line 1: no email column in the header"),
    (b"", "the file has no rows"),
    (b"\n ,\n", "the file has no rows"),
])
def test_a_file_without_a_usable_header_is_refused_whole(data, message):
    with pytest.raises(BrokenFile) as caught:
        read_rows(data)
    assert str(caught.value).startswith(message)


def test_duplicates_in_the_file_are_refused_case_insensitively_after_normalisation():
    parsed = read_rows(b"name,email\nAnn,ann@example.com\nAnn again,ANN@EXAMPLE.COM\n"
                       b"Ann twice, ann@example.com \n")
    assert outcomes(parsed) == [(2, IMPORTED, None), (3, REFUSED, "duplicate of line 2"),
                                (4, REFUSED, "duplicate of line 2")]


def test_invalid_addresses_are_refused_with_the_reason():
    parsed = read_rows(b"name,email\nAnn,not an address\nBob,\nCid,cid@gmial..com\n")
    (line2, ann), (line3, bob), (line4, cid) = [(r.line, r) for r in parsed.rows]
    assert (line2, ann.outcome) == (2, REFUSED)
    assert ann.reason == "invalid address: An email address must have an @-sign."
    assert (line3, bob.outcome, bob.reason) == (3, REFUSED, "no email address")
    assert cid.outcome == REFUSED and cid.reason.startswith("invalid address: ")


def test_likely_typos_are_imported_with_a_warning():
    row, = read_rows(b"name,email\nAnn,ann@gmial.com\n").rows
    assert (row.outcome, row.email, row.suggestion) == (WARNED, "ann@gmial.com", "ann@gmail.com")
    assert row.reason == "did you mean ann@gmail.com?"


def test_a_known_domain_is_not_taken_for_a_typo():
    row, = read_rows(b"name,email\nAnn,ann@gmial.com\n", known_domains=["gmial.com"]).rows
    assert row.outcome == IMPORTED


def test_empty_rows_are_skipped_and_reported_with_their_lines():
    parsed = read_rows(b"\nname,email\nAnn,ann@example.com\n,\n  ;  \n\nBob,bob@example.com\n")
    assert outcomes(parsed) == [(1, SKIPPED, "empty row"), (3, IMPORTED, None),
                                (4, SKIPPED, "empty row"), (5, REFUSED, parsed.rows[3].reason),
                                (6, SKIPPED, "empty row"), (7, IMPORTED, None)]
    # "  ;  " is one cell in a comma file: not empty, and it has no address
    assert parsed.rows[3].reason == "1 cell but the header has 2: missing column"


def test_ragged_rows_are_refused_with_the_reason():
    parsed = read_rows(b"name,email\nLee, Ann,ann@example.com\nBob\nCid,cid@example.com,,\n")
    assert outcomes(parsed) == [
        (2, REFUSED, "3 cells but the header has 2: a comma or semicolon inside a name needs "
                     "quotes around the name"),
        (3, REFUSED, "1 cell but the header has 2: missing column"),
        (4, IMPORTED, None),  # empty trailing cells are harmless
    ]


def test_hostile_names_are_kept_as_text():
    data = ('name,email\n"<script>alert(1)</script>",ann@example.com\n'
            '"Bob\r\nBcc: victim@example.com",bob@example.com\n'
            '=HYPERLINK("http://evil.example"),cid@example.com\n').encode()
    names = [(r.line, r.name) for r in read_rows(data).rows]
    assert names == [(2, "<script>alert(1)</script>"), (3, "Bob\r\nBcc: victim@example.com"),
                     (5, '=HYPERLINK("http://evil.example")')]  # line 5: the name spans 3-4


def test_a_nul_character_refuses_its_row_only():
    parsed = read_rows(b"name,email\nA\0nn,ann@example.com\nBob,bob@example.com\n")
    assert outcomes(parsed) == [(2, REFUSED, "contains a NUL character, which cannot be stored"),
                                (3, IMPORTED, None)]


@pytest.mark.parametrize("data, message", [
    ("name,email\nAnn,ann@example.com\nZoë,zoe@example.com\n".encode("latin-1"),
     "line 3: not UTF-8 (byte 0xEB)"),
    ("name,email\n".encode("utf-16"), "the file is UTF-16, not UTF-8"),
    (b'name,email\nAnn,ann@example.com\n"Bob,bob@example.com\nCid,cid@example.com\n',
     "line 3: a quote opened here is never closed"),
    (b'name,email\nAnn,ann@example.com\n"Bob"x,bob@example.com\n',
     "line 3: ',' expected after '\"'"),
])
def test_a_broken_file_is_refused_whole_with_the_line_and_reason(data, message):
    with pytest.raises(BrokenFile) as caught:
        read_rows(data)
    assert str(caught.value).startswith(message)


def test_files_over_the_limits_are_refused(monkeypatch):
    with pytest.raises(BrokenFile, match=r"the limit is 5 MB"):
        read_rows(b"name,email\n" + b"x" * importer.MAX_FILE_BYTES)
    monkeypatch.setattr(importer, "MAX_ROWS", 2)
    with pytest.raises(BrokenFile, match=r"^line 4: the file has more than 2 rows"):
        read_rows(b"name,email\na,a@example.com\nb,b@example.com\nc,c@example.com\n")


def test_progress_is_reported_up_to_the_total():
    calls = []
    read_rows(b"name,email\n" + b"a,a@example.com\n" * 1200,
              progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (1202, 1202)  # 1201 lines and the empty one after the last newline
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_the_refused_rows_csv_is_safe_to_open_in_a_spreadsheet():
    parsed = read_rows(b'name,email\n=cmd|calc,not-an-address\n"@SUM(A1)",+1@\n'
                       b'Ann,ann@example.com\n')
    text = importer.refused_rows_csv(parsed.header, parsed.rows)
    assert list(csv.reader(io.StringIO(text))) == [
        ["line", "reason", "name", "email"],
        ["2", "invalid address: An email address must have an @-sign.", "'=cmd|calc",
         "not-an-address"],
        ["3", parsed.rows[1].reason, "'@SUM(A1)", "'+1@"],
    ]


# --- writing -----------------------------------------------------------------------------------

def test_import_adds_recipients_and_refuses_addresses_the_credential_has(app, sink):
    credential = create_credential("Course", [{"name": "Ann", "email": "Ann@Example.com"}])
    parsed = read_rows(b"name,email\nAnn again,ann@example.COM\nBob,bob@gmial.com\n\n"
                       b"Cid,cid@example.com\n")
    summary = importer.import_rows(credential, parsed)
    assert [(r.line, r.outcome, r.reason) for r in summary.rows] == [
        (2, REFUSED, "already a recipient of this credential"),
        (3, WARNED, "did you mean bob@gmail.com?"),
        (4, SKIPPED, "empty row"),
        (5, IMPORTED, None),
    ]
    assert summary.describe() == ("2 imported (1 with a typo warning), 1 refused, 1 empty "
                                  "skipped of 4 rows.")
    db.session.expire_all()
    assert [(r.name, r.email, r.status) for r in credential.recipients] == [
        ("Ann", "Ann@example.com", "not_sent"), ("Bob", "bob@gmial.com", "not_sent"),
        ("Cid", "cid@example.com", "not_sent")]
    assert sink.messages == []  # a draft sends nothing


def test_importing_into_a_published_credential_sends_to_the_new_recipients(app, sink):
    credential = create_credential("Course", [{"name": "Ann", "email": "ann@example.com"}],
                                   state="published")
    summary = importer.import_rows(credential, read_rows(
        b"name,email\nBob,bob@example.com\nCid,cid@gmial.com\n"))
    assert summary.queued == 2
    db.session.expire_all()
    assert {r.email: r.status for r in credential.recipients} == {
        "ann@example.com": "not_opened", "bob@example.com": "not_opened",
        "cid@gmial.com": "bounced"}  # the sink refuses gmial.com with a real 550
    assert sorted(m.recipients[0] for m in sink.messages) == [
        "ann@example.com", "bob@example.com"]


def test_a_failure_while_writing_imports_nothing(app, sink, monkeypatch):
    credential = create_credential("Course", [], state="published")
    monkeypatch.setitem(app.config, "PROVIDER", "nowhere")  # the send cannot even be queued
    with pytest.raises(KeyError):
        importer.import_rows(credential, read_rows(b"name,email\nBob,bob@example.com\n"))
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_hostile_names_are_stored_as_text_and_escaped_on_the_page(app, sink, agent_client):
    credential = create_credential("Course", [])
    data = (b'name,email\n"<script>alert(1)</script>",ann@example.com\n'
            b'"Bob\r\nBcc: x@example.com",bob@example.com\n')
    importer.import_rows(credential, read_rows(data))
    db.session.expire_all()
    assert [r.name for r in credential.recipients] == ["<script>alert(1)</script>",
                                                       "Bob\r\nBcc: x@example.com"]
    page = agent_client.get(f"/credentials/{credential.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- the web upload ----------------------------------------------------------------------------

def upload(client, credential_id, data: bytes, filename="people.csv"):
    return client.post(f"/credentials/{credential_id}/import",
                       data={"file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def test_the_web_upload_shows_the_summary_and_the_refused_rows_download(app, sink, agent_client):
    credential = create_credential("Course", [])
    response = upload(agent_client, credential.id,
                      b"Name;E-mail\nAnn;ann@example.com\nBob;=1+2\nAnn;ANN@example.com\n"
                      b"Cid;cid@hotmial.com\n;\n")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "2 imported (1 with a typo warning), 2 refused, 1 empty skipped of 5 rows." in page
    assert "cid@hotmail.com" in page  # the typo warning
    refused = re.search(r'name="refused" value="([^"]*)"', page).group(1)
    download = agent_client.post(f"/credentials/{credential.id}/import/refused.csv",
                                 data={"refused": html.unescape(refused)})
    assert download.status_code == 200
    assert download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows == [["line", "reason", "Name", "E-mail"],
                    ["3", "invalid address: An email address must have an @-sign.", "Bob",
                     "'=1+2"],
                    ["4", "duplicate of line 2", "Ann", "ANN@example.com"]]
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 2


def test_the_web_upload_of_a_broken_file_imports_nothing_and_says_why(app, sink, agent_client):
    credential = create_credential("Course", [])
    response = upload(agent_client, credential.id,
                      b'name,email\nAnn,ann@example.com\n"Bob,bob@example.com\n')
    assert response.status_code == 400
    assert "Nothing was imported: line 3: a quote opened here is never closed." in \
        response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0


def test_the_web_upload_refuses_a_file_over_the_limit(app, sink, agent_client):
    credential = create_credential("Course", [])
    response = upload(agent_client, credential.id, b"x" * (importer.MAX_FILE_BYTES + 70_000))
    assert response.status_code == 413
    assert "The file is larger than 5 MB: split it." in response.get_data(as_text=True)


def test_the_import_page_lets_one_choose_the_credential(app, sink, agent_client):
    credential = create_credential("Course", [])
    assert "Course (draft)" in agent_client.get("/import").get_data(as_text=True)
    response = agent_client.post("/import", data={
        "credential": str(credential.id),
        "file": (io.BytesIO(b"name,email\nAnn,ann@example.com\n"), "a.csv")},
        content_type="multipart/form-data")
    assert "1 imported, 0 refused, 0 empty skipped of 1 rows." in response.get_data(as_text=True)
    missing = agent_client.post("/import", data={
        "file": (io.BytesIO(b"name,email\n"), "a.csv")}, content_type="multipart/form-data")
    assert missing.status_code == 400
    assert "Choose the credential" in missing.get_data(as_text=True)


def test_a_tampered_refused_rows_download_is_a_400(app, sink, agent_client):
    credential = create_credential("Course", [])
    response = agent_client.post(f"/credentials/{credential.id}/import/refused.csv",
                                 data={"refused": json.dumps({"rows": 3})})
    assert response.status_code == 400


def test_the_upload_needs_a_csrf_token_when_csrf_is_on(app_factory, sink):
    from helpdesk.auth import create_user
    from conftest import PASSWORD, sign_in

    app = app_factory(sink, WTF_CSRF_ENABLED=True)
    with app.app_context():
        user = create_user("agent@issuer.example", PASSWORD)
        credential = create_credential("Course", [])
        client = app.test_client()
        sign_in(client, user)
        response = upload(client, credential.id, b"name,email\nAnn,ann@example.com\n")
        assert response.status_code == 400
        assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0
        form = client.get(f"/credentials/{credential.id}/import").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        response = client.post(f"/credentials/{credential.id}/import", data={
            "csrf_token": token, "file": (io.BytesIO(b"name,email\nAnn,ann@example.com\n"),
                                          "people.csv")}, content_type="multipart/form-data")
        assert response.status_code == 200
        assert db.session.scalar(select(func.count()).select_from(Recipient)) == 1

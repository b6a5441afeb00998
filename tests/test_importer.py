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
from helpdesk.importer import BrokenFile, read_rows
from helpdesk.intake import ACCEPTED, DUPLICATE, EMPTY, INVALID, NOT_PROVIDED, TYPO, UNREADABLE
from helpdesk.models import Credential, Delivery, Recipient, db

IMPORTED, SKIPPED = ACCEPTED, EMPTY


def outcomes(parsed) -> list[tuple[int, str, str | None]]:
    return [(row.line, row.kind, row.reason) for row in parsed.rows]


# --- reading -----------------------------------------------------------------------------------

def test_a_plain_file_is_read_row_by_row_with_line_numbers():
    parsed = read_rows(b"name,email\nAnn Lee,ann@example.com\nBob Ray,Bob@Example.com\n")
    assert parsed.delimiter == ","
    assert [(r.line, r.kind, r.name, r.email) for r in parsed.rows] == [
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
    assert (row.name, row.email, row.kind) == ("Ann Lee", "ann@example.com", IMPORTED)


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


def test_duplicates_in_the_file_are_found_case_insensitively_after_normalisation():
    parsed = read_rows(b"name,email\nAnn,ann@example.com\nAnn again,ANN@EXAMPLE.COM\n"
                       b"Ann twice, ann@example.com \n")
    assert outcomes(parsed) == [(2, IMPORTED, None),
                                (3, DUPLICATE, "the same address as line 2"),
                                (4, DUPLICATE, "the same address as line 2")]


def test_invalid_addresses_say_why_and_a_missing_one_is_kept_as_not_provided():
    parsed = read_rows(b"name,email\nAnn,not an address\nBob,\nCid,cid@gmial..com\n")
    ann, bob, cid = parsed.rows
    assert (ann.line, ann.kind) == (2, INVALID)
    assert ann.reason == "An email address must have an @-sign."
    assert (bob.line, bob.kind, bob.name, bob.email) == (3, NOT_PROVIDED, "Bob", None)
    assert cid.kind == INVALID


def test_likely_typos_wait_for_a_review():
    row, = read_rows(b"name,email\nAnn,ann@gmial.com\n").rows
    assert (row.kind, row.email, row.suggestion) == (TYPO, "ann@gmial.com", "ann@gmail.com")
    assert row.reason == "did you mean ann@gmail.com?"


def test_a_known_domain_is_not_taken_for_a_typo():
    row, = read_rows(b"name,email\nAnn,ann@gmial.com\n", known_domains=["gmial.com"]).rows
    assert row.kind == IMPORTED


def test_empty_rows_are_skipped_and_reported_with_their_lines():
    parsed = read_rows(b"\nname,email\nAnn,ann@example.com\n,\n  ;  \n\nBob,bob@example.com\n")
    assert outcomes(parsed) == [(1, SKIPPED, "empty row"), (3, IMPORTED, None),
                                (4, SKIPPED, "empty row"), (5, UNREADABLE, parsed.rows[3].reason),
                                (6, SKIPPED, "empty row"), (7, IMPORTED, None)]
    # "  ;  " is one cell in a comma file: not empty, and it has no address
    assert parsed.rows[3].reason == "1 cell but the header has 2: missing column"


def test_ragged_rows_are_refused_with_the_reason():
    parsed = read_rows(b"name,email\nLee, Ann,ann@example.com\nBob\nCid,cid@example.com,,\n")
    assert outcomes(parsed) == [
        (2, UNREADABLE, "3 cells but the header has 2: a comma or semicolon inside a name "
                        "needs quotes around the name"),
        (3, UNREADABLE, "1 cell but the header has 2: missing column"),
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
    assert outcomes(parsed) == [
        (2, UNREADABLE, "it contains a NUL character, which cannot be stored"), (3, IMPORTED, None)]


@pytest.mark.parametrize("data, message", [
    ("name,email\nAnn,ann@example.com\nZoë,zoe@example.com\n".encode("latin-1"),
     "line 3: not UTF-8 (byte 0xEB)"),
    ("name,email\n".encode("utf-16"), "the file is UTF-16, not UTF-8"),
    (b'"name,email\nAnn,ann@example.com\n', "line 1: the header cannot be read"),
])
def test_a_file_that_cannot_be_read_as_a_whole_is_refused_with_the_line_and_reason(data, message):
    with pytest.raises(BrokenFile) as caught:
        read_rows(data)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("broken, reason", [
    (b'"Bob,bob@example.com', "a quote opens a cell here and never closes: remove it or close it"),
    (b'"Bob"x,bob@example.com', "a quote in the middle of a cell: put the whole cell in quotes "
                                "and double the quote inside it"),
])
def test_a_broken_row_is_named_in_plain_words_and_the_rest_is_still_read(broken, reason):
    parsed = read_rows(b"name,email\nAnn,ann@example.com\n" + broken
                       + b"\nCid,cid@example.com\n\"Dee\nDove\",dee@example.com\n")
    assert [(r.line, r.kind, r.name) for r in parsed.rows] == [
        (2, IMPORTED, "Ann"), (3, UNREADABLE, ""), (4, IMPORTED, "Cid"),
        (5, IMPORTED, "Dee\nDove")]  # a quoted line break is still one cell
    assert parsed.rows[1].reason.startswith(reason)
    assert "expected" not in parsed.rows[1].reason  # not the parser's own words


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


def test_the_rows_left_out_csv_is_safe_to_open_in_a_spreadsheet():
    parsed = read_rows(b'name,email\nAnn,ann@example.com\n=cmd|calc,ann@example.com\n'
                       b'"@SUM(A1)",+1@example.com,x\n')
    text = importer.left_out_csv(parsed.header, parsed.rows)
    assert list(csv.reader(io.StringIO(text))) == [
        ["line", "reason", "name", "email"],
        ["3", "the same address as line 2", "'=cmd|calc", "ann@example.com"],
        ["4", parsed.rows[2].reason, "'@SUM(A1)", "'+1@example.com", "x"],
    ]


# --- writing -----------------------------------------------------------------------------------

def test_import_adds_recipients_and_leaves_out_addresses_the_credential_has(app, sink):
    credential = create_credential("Course", [{"name": "Ann", "email": "Ann@Example.com"}])
    parsed = read_rows(b"name,email\nAnn again,ann@example.COM\nBob,bob@gmial.com\n\n"
                       b"Cid,cid@example.com\nDee,\n")
    summary = importer.import_rows(credential, parsed, use_suggestion={3})
    assert [(r.line, r.kind, r.reason) for r in summary.rows] == [
        (2, DUPLICATE, "already a recipient of this credential"),
        (3, IMPORTED, None),  # with the suggestion the review took
        (4, SKIPPED, "empty row"),
        (5, IMPORTED, None),
        (6, NOT_PROVIDED, None),
    ]
    assert summary.describe() == ("3 imported of 5 rows: 1 duplicate (not added again), "
                                  "1 kept without an address, 2 accepted, 1 empty (skipped).")
    db.session.expire_all()
    assert [(r.name, r.email, r.status) for r in credential.recipients] == [
        ("Ann", "Ann@example.com", "not_sent"), ("Bob", "bob@gmail.com", "not_sent"),
        ("Cid", "cid@example.com", "not_sent"), ("Dee", None, "not_provided")]
    assert sink.messages == []  # a draft sends nothing


def test_a_typo_kept_as_typed_is_imported_as_typed(app, sink):
    credential = create_credential("Course", [])
    summary = importer.import_rows(credential, read_rows(b"name,email\nBob,bob@gmial.com\n"))
    assert [(r.kind, r.email) for r in summary.rows] == [(IMPORTED, "bob@gmial.com")]


def test_importing_into_a_published_credential_sends_to_the_new_recipients(app, sink):
    credential = create_credential("Course", [{"name": "Ann", "email": "ann@example.com"}],
                                   state="published")
    summary = importer.import_rows(credential, read_rows(
        b"name,email\nBob,bob@example.com\nCid,cid@gmial.com\n"))  # the typo kept as typed
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

def upload(client, credential_id, data: bytes, filename="people.csv", **fields):
    return client.post(f"/credentials/{credential_id}/import",
                       data={"file": (io.BytesIO(data), filename), **fields},
                       content_type="multipart/form-data", follow_redirects=True)


def form_key(client, path: str) -> str:
    return re.search(r'name="form_key" value="([^"]+)"', client.get(path).text).group(1)


def confirm_form(page: str, unchecked=()) -> list[tuple[str, str]]:
    """The fields the review page sends back, as a browser would (checked boxes only)."""
    fields = [(name, html.unescape(value)) for name, value in re.findall(
        r'<input type="hidden" name="(credential|title|rows|import_key)" value="([^"]*)">', page)]
    fields += [("use_suggestion", line) for line in re.findall(
        r'name="use_suggestion" value="(\d+)" checked', page) if line not in unchecked]
    return fields


def test_the_web_upload_reviews_typos_before_importing_or_sending_anything(app, sink,
                                                                          agent_client):
    credential = create_credential("Course", [], state="published")
    response = upload(agent_client, credential.id,
                      b"Name;E-mail\nAnn;ann@example.com\nBob;=1+2\nAnn;ANN@example.com\n"
                      b"Cid;cid@hotmial.com\nDee;dee@gmial.com\n;\nEve;\n")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Nothing is imported yet. 7 rows: 1 likely typo" not in page  # two typos
    assert ("Nothing is imported yet. 7 rows: 2 likely typo to review, 1 not a usable address "
            "(kept, never emailed), 1 duplicate (not added again), 1 kept without an address, "
            "1 accepted, 1 empty (skipped).") in page
    assert "emailed at once" in page
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0
    assert sink.messages == []
    from werkzeug.datastructures import MultiDict

    done = agent_client.post("/import/confirm", data=MultiDict(confirm_form(page, {"6"})))
    assert done.status_code == 303  # POST-redirect-GET: the summary is a page of its own
    summary = agent_client.get(done.headers["Location"]).get_data(as_text=True)
    assert "5 imported of 7 rows" in summary
    db.session.expire_all()
    assert {r.name: r.email for r in credential.recipients} == {
        "Ann": "ann@example.com", "Bob": "=1+2", "Cid": "cid@hotmail.com",
        "Dee": "dee@gmial.com", "Eve": None}
    # only what the review kept went out: the corrected address, not the flagged typo
    assert "cid@hotmail.com" in {m.recipients[0] for m in sink.messages}
    assert "cid@hotmial.com" not in {m.recipients[0] for m in sink.messages}
    download = agent_client.get(re.search(r'id="refused-download" href="([^"]+)"',
                                          summary).group(1))
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows == [["line", "reason", "Name", "E-mail"],
                    ["4", "the same address as line 2", "Ann", "ANN@example.com"]]


def test_a_clean_file_is_imported_at_once(app, sink, agent_client):
    credential = create_credential("Course", [])
    page = upload(agent_client, credential.id,
                  b"name,email\nAnn,ann@example.com\n").get_data(as_text=True)
    assert "1 imported of 1 row: 1 accepted." in page


def test_the_web_upload_of_a_broken_row_names_it_and_imports_the_rest_after_review(
        app, sink, agent_client):
    credential = create_credential("Course", [])
    response = upload(agent_client, credential.id,
                      b'name,email\nAnn,ann@example.com\n"Bob,bob@example.com\nCid,c@example.com\n')
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r'<tr data-line="3" data-verdict="unreadable">.*?a quote opens a cell here '
                     r'and never closes', page, re.S)
    assert "2 accepted" in page
    from werkzeug.datastructures import MultiDict

    agent_client.post("/import/confirm", data=MultiDict(confirm_form(page)))
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 2


def test_the_web_upload_refuses_a_file_over_the_limit(app, sink, agent_client):
    credential = create_credential("Course", [])
    response = upload(agent_client, credential.id, b"x" * (importer.MAX_FILE_BYTES + 70_000))
    assert response.status_code == 413
    assert "The file is larger than 5 MB: split it." in response.get_data(as_text=True)


def test_the_import_page_lets_one_choose_the_credential_and_says_which_are_published(
        app, sink, agent_client):
    credential = create_credential("Course", [])
    create_credential("Live", [], state="published")
    form = agent_client.get("/import").get_data(as_text=True)
    assert "#1 Course (draft)" in form and "#2 Live (published: emailed at once)" in form
    response = agent_client.post("/import", data={
        "credential": str(credential.id),
        "file": (io.BytesIO(b"name,email\nAnn,ann@example.com\n"), "a.csv")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "1 imported of 1 row: 1 accepted." in response.get_data(as_text=True)
    missing = agent_client.post("/import", data={
        "file": (io.BytesIO(b"name,email\n"), "a.csv")}, content_type="multipart/form-data")
    assert missing.status_code == 400
    assert "Choose the credential" in missing.get_data(as_text=True)


def test_an_import_can_create_its_credential(app, sink, agent_client):
    response = agent_client.post("/import", data={
        "credential": "new", "title": "Spring Cohort",
        "file": (io.BytesIO(b"name,email\nAnn,ann@example.com\nBob,\n"), "a.csv")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "Imported into Spring Cohort" in response.get_data(as_text=True)
    credential = db.session.scalar(select(Credential))
    assert credential.title == "Spring Cohort" and credential.state.value == "draft"
    assert [r.name for r in credential.recipients] == ["Ann", "Bob"] and sink.messages == []
    untitled = agent_client.post("/import", data={
        "credential": "new", "file": (io.BytesIO(b"name,email\n"), "a.csv")},
        content_type="multipart/form-data")
    assert untitled.status_code == 400 and "Give the new credential a title" in untitled.text


def test_tampered_review_rows_are_a_400_and_import_nothing(app, sink, agent_client):
    credential = create_credential("Course", [])
    response = agent_client.post("/import/confirm", data={
        "credential": str(credential.id), "rows": json.dumps({"rows": 3})})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0


def test_reloading_or_sending_an_import_twice_imports_once(app, sink, agent_client):
    credential = create_credential("Course", [], state="published")
    path = f"/credentials/{credential.id}/import"
    key = form_key(agent_client, path)
    clean = b"name,email\nAnn,ann@example.com\nBob,\n"
    first = agent_client.post(path, data={"form_key": key, "file": (io.BytesIO(clean), "a.csv")},
                              content_type="multipart/form-data")
    assert first.status_code == 303 and first.headers["Location"].startswith("/imports/")
    # A reload shows the summary again (a GET) and imports nothing.
    for _ in range(2):
        assert "2 imported of 2 rows" in agent_client.get(first.headers["Location"]).text
    # The same form sent again with the same file (the back button, a double click): once.
    again = agent_client.post(path, data={"form_key": key, "file": (io.BytesIO(clean), "a.csv")},
                              content_type="multipart/form-data")
    assert again.headers["Location"] == first.headers["Location"]
    assert "Nothing was imported twice" in agent_client.get(again.headers["Location"]).text
    db.session.expire_all()
    assert [r.name for r in credential.recipients] == ["Ann", "Bob"]
    assert len(sink.messages) == 1  # Ann emailed once
    # The same for the review's answer.
    from werkzeug.datastructures import MultiDict

    review = upload(agent_client, credential.id, b"name,email\nCid,cid@hotmial.com\n",
                    form_key=key).text
    answer = MultiDict(confirm_form(review))
    assert answer.get("import_key")
    once = agent_client.post("/import/confirm", data=answer)
    twice = agent_client.post("/import/confirm", data=answer)
    assert once.status_code == twice.status_code == 303
    assert once.headers["Location"] == twice.headers["Location"] != first.headers["Location"]
    db.session.expire_all()
    assert [r.name for r in credential.recipients] == ["Ann", "Bob", "Cid"]


def test_an_import_summary_and_its_left_out_rows_are_pages_of_their_own(app, sink,
                                                                         agent_client):
    credential = create_credential("Course", [])
    page = upload(agent_client, credential.id, b"name,email\nAnn,ann@example.com\n"
                  b"Ann,ann@example.com\n").text
    from werkzeug.datastructures import MultiDict

    done = agent_client.post("/import/confirm", data=MultiDict(confirm_form(page)))
    summary = agent_client.get(done.headers["Location"]).text
    assert "Import #1" in summary and "by agent@issuer.example" in summary
    link = re.search(r'id="refused-download" href="([^"]+)"', summary).group(1)
    rows = list(csv.reader(io.StringIO(agent_client.get(link).text.lstrip("\ufeff"))))
    assert rows[1][:2] == ["3", "the same address as line 2"]
    assert agent_client.get("/imports/99").status_code == 404
    assert agent_client.get("/imports/99/left-out.csv").status_code == 404


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
        assert response.status_code == 303
        assert db.session.scalar(select(func.count()).select_from(Recipient)) == 1

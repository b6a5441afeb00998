"""Creating a credential from the web form: one recipient a line, precise errors per line,
likely typos and malformed addresses shown before anything is written, real sends through the
SMTP sink."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from conftest import PASSWORD, sign_in
from helpdesk.auth import create_user
from helpdesk.models import Credential, CredentialState, Recipient, db
from helpdesk.status import BOUNCED, NOT_OPENED, NOT_PROVIDED, NOT_SENT
from helpdesk.intake import Entry, unreadable
from helpdesk.views.compose import (MAX_LINES, FormError, LineError, RecipientLine,
                                    parse_line, parse_recipient_lines, scheduled_moment)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def form(recipients: str, **fields) -> dict:
    return {"title": "Data literacy", "state": "draft", "send_email": "on",
            "recipients": recipients, **fields}


def credentials_count() -> int:
    return db.session.scalar(select(func.count(Credential.id)))


def only_credential() -> Credential:
    db.session.expire_all()
    (credential,) = db.session.scalars(select(Credential)).all()
    return credential


def by_name(credential: Credential) -> dict[str, Recipient]:
    return {r.name: r for r in credential.recipients}


def text(response) -> str:
    return response.get_data(as_text=True)


# --- reading the lines (pure) -------------------------------------------------------------------

@pytest.mark.parametrize("line, name, email", [
    ("Ann Lee <ann@valley.example>", "Ann Lee", "ann@valley.example"),
    ('"Lee, Ann" <ann@valley.example>', "Lee, Ann", "ann@valley.example"),
    ("Ann Lee, ann@valley.example", "Ann Lee", "ann@valley.example"),
    ("Lee, Ann; ann@valley.example", "Lee, Ann", "ann@valley.example"),
    ("  ann@valley.example ;", "", "ann@valley.example"),
    ("<ann@valley.example>", "", "ann@valley.example"),
    ("Lee, Ann", "Lee, Ann", None),
    ("Ann Lee", "Ann Lee", None),
    ("<script>alert(1)</script>, eve@valley.example", "<script>alert(1)</script>",
     "eve@valley.example"),
    ("<b>Eve</b> <eve@valley.example>", "<b>Eve</b>", "eve@valley.example"),
    ("<b>Eve</b>", "<b>Eve</b>", None),
    ("Eve\x00\x07 Lee\u2028Smith\t<eve@valley.example>", "Eve Lee Smith", "eve@valley.example"),
])
def test_each_way_of_writing_a_line(line, name, email):
    assert parse_line(4, line) == RecipientLine(4, name, email)


@pytest.mark.parametrize("line, reason", [
    ("Ann Lee ann@valley.example", "put a comma between the name and the address"),
    ("Ann <>", "nothing between < and >"),
    ("ann@valley.example, bob@valley.example", "more than one address"),
    ("Ann <ann@valley.example>, Bob <bob@valley.example>", "more than one address"),
    ("A" * 301 + ", ann@valley.example", "the name is longer than 300 characters"),
    ("Ann, " + "a" * 310 + "@valley.example", "the address is longer than 320 characters"),
])
def test_a_line_that_cannot_be_read_says_why(line, reason):
    error = parse_line(7, line)
    assert isinstance(error, LineError) and error.line == 7
    assert reason in str(error) and str(error).startswith("Line 7: ")


def test_lines_are_numbered_as_the_textarea_shows_them():
    assert parse_recipient_lines(
        "Ann, ann@valley.example\r\n\r\nBob bob@valley.example\rCid\nANN@valley.example\n\n"
    ) == [Entry(1, "Ann", "ann@valley.example"),
          unreadable(3, "put a comma between the name and the address (Ann Lee, "
                        "ann@example.com) or write Ann Lee <ann@example.com>"),
          Entry(4, "Cid", None), Entry(5, "", "ANN@valley.example")]


def test_a_list_longer_than_the_limit_is_refused_whole():
    parse_recipient_lines("x@valley.example\n" * MAX_LINES)  # at the limit: fine (duplicates)
    with pytest.raises(FormError, match="at most 10,000 .* CSV file"):
        parse_recipient_lines("Ann\n" * (MAX_LINES + 1))


def test_a_scheduled_time_is_read_in_its_zone():
    assert scheduled_moment("2026-07-01T09:30", "Europe/Paris", NOW) == \
        datetime(2026, 7, 1, 7, 30, tzinfo=timezone.utc)
    assert scheduled_moment("2026-12-01T09:00", "UTC", NOW) == \
        datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("local, zone, message", [
    ("", "UTC", "Choose the date and time"),
    ("tomorrow", "UTC", "must look like 2026-12-01T09:00, not 'tomorrow'"),
    ("2026-07-01T09:30", "Mars/Olympus", "Unknown time zone 'Mars/Olympus'"),
    ("2026-03-29T02:30", "Europe/Paris", "does not exist in Europe/Paris"),
    ("2026-02-28T09:00", "UTC", "is in the past"),
])
def test_a_scheduled_time_that_cannot_be_used(local, zone, message):
    with pytest.raises(FormError, match=re.escape(message)):
        scheduled_moment(local, zone, NOW)


# --- the page ---------------------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_sign_in(client):
    for response in (client.get("/credentials/new"),
                     client.post("/credentials/new", data=form("ann@valley.example"))):
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert credentials_count() == 0


def test_the_form_explains_each_field(agent_client):
    html = text(agent_client.get("/credentials/new"))
    assert 'name="csrf_token"' in html and 'type="datetime-local"' in html
    assert "<option selected>UTC</option>" in html and "<option>Europe/Paris</option>" in html
    assert "Email is not provided" in html and "At most 10,000 lines" in html
    assert 'href="/import"' in html


def test_the_credentials_page_links_to_the_form_and_a_credential_to_its_import(
        admin_client, app):
    assert 'href="/credentials/new"' in text(admin_client.get("/credentials"))
    admin_client.post("/credentials/new", data=form("ann@valley.example"))
    credential_id = only_credential().id
    assert f'href="/credentials/{credential_id}/import"' in \
        text(admin_client.get(f"/credentials/{credential_id}"))


def test_a_draft_is_created_and_nothing_is_sent(agent_client, sink):
    response = agent_client.post("/credentials/new", data=form(
        "Ann Lee <ann@valley.example>\nBob, bob@valley.example\nLee, Cid; cid@valley.example\n"
        "dee@valley.example\nEd Without Address\n"))
    credential = only_credential()
    assert response.status_code == 303
    assert response.headers["Location"] == f"/credentials/{credential.id}"
    assert credential.title == "Data literacy" and credential.state == CredentialState.draft
    assert {(r.name, r.email, r.status) for r in credential.recipients} == {
        ("Ann Lee", "ann@valley.example", NOT_SENT), ("Bob", "bob@valley.example", NOT_SENT),
        ("Lee, Cid", "cid@valley.example", NOT_SENT), ("", "dee@valley.example", NOT_SENT),
        ("Ed Without Address", None, NOT_PROVIDED)}
    assert ("Created “<bdi>Data literacy</bdi>” with 5 recipients; 0 emails queued. 1 recipient has no "
            "usable address and will not be emailed. It is a draft: nothing is sent.") in \
        text(agent_client.get(response.headers["Location"]))
    assert sink.messages == []


def test_publishing_sends_through_smtp(admin_client, sink):
    response = admin_client.post("/credentials/new", data=form(
        "Ann <ann@valley.example>\nNo Address\n", state="published"))
    assert response.status_code == 303
    credential = only_credential()
    assert credential.state == CredentialState.published
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]
    assert by_name(credential)["Ann"].status == NOT_OPENED
    assert by_name(credential)["No Address"].status == NOT_PROVIDED
    assert "with 2 recipients; 1 email queued." in \
        text(admin_client.get(response.headers["Location"]))


def test_publishing_without_email_sends_nothing(agent_client, sink):
    data = form("ann@valley.example", state="published")
    del data["send_email"]
    agent_client.post("/credentials/new", data=data)
    credential = only_credential()
    assert credential.state == CredentialState.published and not credential.send_email
    assert sink.messages == [] and credential.recipients[0].status == NOT_SENT


def test_a_scheduled_credential_waits_for_its_time(agent_client, sink):
    when = (datetime.now(timezone.utc) + timedelta(days=3)).replace(second=0, microsecond=0)
    tokyo = when.astimezone(ZoneInfo("Asia/Tokyo"))
    response = agent_client.post("/credentials/new", data=form(
        "ann@valley.example", state="scheduled", scheduled_at=f"{tokyo:%Y-%m-%dT%H:%M}",
        timezone="Asia/Tokyo"))
    assert response.status_code == 303
    credential = only_credential()
    assert credential.state == CredentialState.scheduled
    stored = credential.scheduled_at.replace(tzinfo=timezone.utc) \
        if credential.scheduled_at.tzinfo is None else credential.scheduled_at
    assert stored == when
    assert f"It will be published on {stored:%Y-%m-%d %H:%M} UTC." in \
        text(agent_client.get(response.headers["Location"]))
    assert sink.messages == []


def test_a_scheduled_credential_needs_a_future_time(agent_client):
    response = agent_client.post("/credentials/new", data=form(
        "ann@valley.example", state="scheduled", scheduled_at="2020-01-01T09:00"))
    assert response.status_code == 400
    assert "2020-01-01 09:00 UTC is in the past" in text(response)
    assert credentials_count() == 0


def test_every_bad_line_is_reported_at_once_and_nothing_is_written(agent_client, sink):
    typed = ("Ann, ann@valley.example\nBob bob@valley.example\nCid <>\n"
             "ann@valley.example\n" + "D" * 301 + ", dee@valley.example\nEve, eve@gmial.com\n")
    response = agent_client.post("/credentials/new", data=form(typed, title="  ",
                                                                 state="published"))
    html = text(response)
    assert response.status_code == 400
    assert "Nothing was created." in html and "Give the credential a title." in html
    for line, reason in ((2, "put a comma between the name and the address"),
                         (3, "nothing between &lt; and &gt;"),
                         (5, "the name is longer than 300 characters")):
        assert re.search(rf'<li data-line="{line}">Line {line}: {reason}', html), line
    # the other verdicts come in the same answer, not in a later round
    assert re.search(r'data-line="4" data-verdict="duplicate">.*?the same address as line 1',
                     html, re.S)
    assert re.search(r'data-line="6" data-verdict="typo">.*?did you mean eve@gmail.com', html,
                     re.S)
    assert "Line 1" not in html
    # the form comes back as typed, escaped
    assert "Cid &lt;&gt;" in html and 'value="published" checked' in html
    assert credentials_count() == 0 and sink.messages == []


def test_too_many_lines_go_through_the_csv_import(agent_client):
    response = agent_client.post("/credentials/new", data=form("Ann\n" * (MAX_LINES + 1)))
    assert response.status_code == 400
    assert "at most 10,000 can be typed here. Import bigger lists from a CSV file." in \
        text(response)
    assert credentials_count() == 0


def test_a_full_list_at_the_limit_is_created(agent_client):
    lines = "\n".join(f"Person {i}, p{i}@valley.example" for i in range(MAX_LINES))
    response = agent_client.post("/credentials/new", data=form(lines))
    assert response.status_code == 303
    assert len(only_credential().recipients) == MAX_LINES


# --- likely typos and malformed addresses --------------------------------------------------------

TYPED = "Ann <ann@valley.example>\nBob <bob@gmial.com>\nCid, cid@hotmial.com\n"


def review_form(response) -> list[tuple[str, str]]:
    """The fields the review sends back, as a browser would submit them (checked boxes only)."""
    html = text(response)
    fields = re.findall(r'<input type="hidden" name="(reviewed)" value="([^"]*)">', html)
    fields += re.findall(r'<input type="checkbox" name="(use_suggestion)" value="([^"]*)" checked>',
                         html)
    return fields


def test_likely_typos_are_shown_before_anything_is_created(agent_client, sink):
    response = agent_client.post("/credentials/new", data=form(TYPED, state="published"))
    html = text(response)
    assert response.status_code == 422
    assert re.search(r'data-line="2" data-verdict="typo">.*?bob@gmial.com.*?'
                     r'value="2" checked> bob@gmail.com', html, re.S)
    assert re.search(r'data-line="3" data-verdict="typo">.*?cid@hotmail.com', html, re.S)
    assert "3 rows: 2 likely typo to review, 1 accepted." in html
    assert "Create anyway as typed" in html and "Nothing was created yet" in html
    assert len(review_form(response)) == 3  # the review's name, two boxes checked by default
    assert credentials_count() == 0 and sink.messages == []


def test_accepted_suggestions_replace_the_typed_addresses(agent_client, sink):
    first = agent_client.post("/credentials/new", data=form(TYPED, state="published"))
    data = MultiDict([*form(TYPED, state="published").items(), *review_form(first),
                      ("action", "review")])
    response = agent_client.post("/credentials/new", data=data)
    assert response.status_code == 303
    emails = {r.name: r.email for r in only_credential().recipients}
    assert emails == {"Ann": "ann@valley.example", "Bob": "bob@gmail.com",
                      "Cid": "cid@hotmail.com"}
    assert sorted(m.recipients[0] for m in sink.messages) == [
        "ann@valley.example", "bob@gmail.com", "cid@hotmail.com"]


def test_an_unchecked_suggestion_keeps_that_address_as_typed(agent_client, sink):
    first = agent_client.post("/credentials/new", data=form(TYPED))
    fields = [f for f in review_form(first) if f != ("use_suggestion", "3")]
    agent_client.post("/credentials/new", data=MultiDict([*form(TYPED).items(), *fields,
                                                ("action", "review")]))
    emails = {r.name: r.email for r in only_credential().recipients}
    assert emails["Bob"] == "bob@gmail.com" and emails["Cid"] == "cid@hotmial.com"


def test_create_anyway_as_typed_keeps_every_address_and_the_sink_refuses_the_typo(
        agent_client, sink):
    first = agent_client.post("/credentials/new", data=form(TYPED, state="published"))
    response = agent_client.post("/credentials/new", data=MultiDict([
        *form(TYPED, state="published").items(), *review_form(first), ("action", "keep")]))
    assert response.status_code == 303
    credential = only_credential()
    recipients = by_name(credential)
    assert recipients["Bob"].email == "bob@gmial.com"
    assert recipients["Bob"].status == BOUNCED  # 550 from the sink, for real
    assert recipients["Ann"].status == NOT_OPENED
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]
    assert "with 3 recipients; 3 emails queued." in \
        text(agent_client.get(response.headers["Location"]))


def test_a_list_edited_after_the_review_is_reviewed_again(agent_client):
    first = agent_client.post("/credentials/new", data=form(TYPED))
    edited = TYPED + "Dee, dee@gmial.com\n"
    response = agent_client.post("/credentials/new", data=MultiDict([
        *form(edited).items(), *review_form(first), ("action", "keep")]))
    assert response.status_code == 422
    assert 'data-line="4" data-verdict="typo"' in text(response) and credentials_count() == 0


def test_a_malformed_address_is_kept_only_once_the_user_has_seen_the_warning(agent_client, sink):
    typed = "Ann, ann@valley.example\nBob, bob..lee@valley.example\n"
    first = agent_client.post("/credentials/new", data=form(typed, state="published"))
    assert first.status_code == 422
    assert re.search(r'data-line="2" data-verdict="invalid">.*?bob..lee@valley.example.*?'
                     r"An email address cannot have two periods in a row.", text(first), re.S)
    assert credentials_count() == 0
    response = agent_client.post("/credentials/new", data=MultiDict([
        *form(typed, state="published").items(), *review_form(first), ("action", "review")]))
    assert response.status_code == 303
    bob = by_name(only_credential())["Bob"]
    assert bob.email == "bob..lee@valley.example" and "two periods" in bob.email_error
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]
    assert "with 2 recipients; 1 email queued. 1 recipient has no usable address" in \
        text(agent_client.get(response.headers["Location"]))


def test_a_repeated_address_is_added_once_and_said_so(agent_client, sink):
    typed = "Bob, bob@gmail.com\nBobby, bob@gmial.com\nRob, BOB@gmail.com\n"
    first = agent_client.post("/credentials/new", data=form(typed))
    assert re.search(r'data-line="3" data-verdict="duplicate">.*?the same address as line 1',
                     text(first), re.S)
    response = agent_client.post("/credentials/new", data=MultiDict([
        *form(typed).items(), *review_form(first), ("action", "review")]))
    assert response.status_code == 303
    assert [r.name for r in only_credential().recipients] == ["Bob"]
    assert "Left out 2 repeated addresses (lines 2, 3)." in \
        text(agent_client.get(response.headers["Location"]))


# --- hostile input ------------------------------------------------------------------------------

def test_hostile_names_are_stored_as_text_and_shown_escaped(agent_client):
    typed = ("<script>alert(1)</script>, eve@valley.example\n"
             "<img src=x onerror=alert(2)> <mal@valley.example>\n"
             "Null\x00Byte\x1b[31m, nul@valley.example\n")
    response = agent_client.post("/credentials/new", data=form(typed, title="<b>Title</b>"))
    assert response.status_code == 303
    credential = only_credential()
    assert credential.title == "<b>Title</b>"
    assert {r.name for r in credential.recipients} == {
        "<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "Null Byte [31m"}
    html = text(agent_client.get(response.headers["Location"]))
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "<b>Title" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Created “<bdi>&lt;b&gt;Title&lt;/b&gt;</bdi>”" in html


def test_hostile_input_echoed_back_on_an_error_stays_text(agent_client):
    typed = '</textarea><script>alert(1)</script>\nBob bob@valley.example\n'
    html = text(agent_client.post("/credentials/new",
                                  data=form(typed, title='"><script>alert(2)</script>')))
    assert "<script>alert" not in html
    assert "&lt;/textarea&gt;&lt;script&gt;" in html


# --- CSRF ---------------------------------------------------------------------------------------

def test_the_form_needs_its_csrf_token(app_factory, sink):
    app = app_factory(sink, WTF_CSRF_ENABLED=True)
    with app.app_context():
        agent = create_user("agent@issuer.example", PASSWORD, "agent")
        client = app.test_client()
        sign_in(client, agent)
        response = client.post("/credentials/new", data=form("ann@valley.example"))
        assert response.status_code == 400
        assert "The form had expired" in text(response)
        assert credentials_count() == 0
        page = text(client.get("/credentials/new"))
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = client.post("/credentials/new",
                               data=form("ann@valley.example", csrf_token=token))
        assert response.status_code == 303 and credentials_count() == 1


def test_a_credential_without_recipients_yet_can_be_created_then_filled_by_import(agent_client):
    response = agent_client.post("/credentials/new", data=form("\n  \n"))
    assert response.status_code == 303
    credential = only_credential()
    assert credential.recipients == []
    html = text(agent_client.get(response.headers["Location"]))
    assert "with 0 recipients; 0 emails queued." in html
    assert f'href="/credentials/{credential.id}/import"' in html


def test_a_form_too_large_to_read_is_refused_with_the_way_out(agent_client):
    from helpdesk.views.compose import FORM_LIMIT

    response = agent_client.post("/credentials/new",
                                 data=form("x" * (FORM_LIMIT + 1)))
    assert response.status_code == 413
    assert "import a list this long from a CSV file" in text(response)
    assert credentials_count() == 0

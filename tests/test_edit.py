"""Editing and deleting recipients and credentials from the desk, and the audit log that
remembers who did it."""
from __future__ import annotations

from sqlalchemy import func, select

from desk_data import page
from helpdesk.models import AuditEntry, Credential, Delivery, DeliveryEvent, Recipient, db


def entries(**where) -> list[tuple[str | None, str, str]]:
    query = select(AuditEntry).filter_by(**where).order_by(AuditEntry.id)
    return [(e.actor, e.action, e.summary) for e in db.session.scalars(query)]


def test_any_recipient_can_be_edited_even_an_opened_one(agent_client, desk, sink):
    ada = desk.recipient("Ada Lovelace")
    html = page(agent_client.get(f"/recipients/{ada.id}"))
    assert f'href="/recipients/{ada.id}/edit"' in html
    form = page(agent_client.get(f"/recipients/{ada.id}/edit"))
    assert 'value="Ada Lovelace"' in form and 'value="ada@example.com"' in form
    response = agent_client.post(f"/recipients/{ada.id}/edit", data={
        "name": "Ada King", "email": "ada.king@example.com"})
    assert response.status_code == 303
    db.session.expire_all()
    assert (ada.name, ada.email, ada.email_domain) == ("Ada King", "ada.king@example.com",
                                                       "example.com")
    assert len(ada.deliveries) == 1  # not asked to send: nothing sent
    assert entries(recipient_id=ada.id)[-1] == (
        "agent@issuer.example", "edited",
        "Ada King <ada.king@example.com> (name “Ada Lovelace” → “Ada King”; "
        "address ada@example.com → ada.king@example.com)")


def test_an_edit_can_send_again_to_the_new_address(agent_client, desk, sink):
    bob = desk.recipient("Bob Typo")  # bounced at gmial.com
    html = page(agent_client.post(f"/recipients/{bob.id}/edit", data={
        "name": "Bob Typo", "email": "bob@valley.example", "send": "on"},
        follow_redirects=True))
    assert "Sending again to <bdi>bob@valley.example</bdi>." in html
    assert sink.messages[-1].recipients == ["bob@valley.example"]
    db.session.expire_all()
    assert bob.status == "not_opened"
    assert [a for _, a, _ in entries(recipient_id=bob.id)][-2:] == ["edited", "resent"]


def test_a_likely_typo_is_asked_about_before_saving(agent_client, desk, sink):
    ada = desk.recipient("Ada Lovelace")
    asked = agent_client.post(f"/recipients/{ada.id}/edit",
                              data={"name": "Ada", "email": "ada@gmial.com", "send": "on"})
    assert asked.status_code == 200
    assert "Did you mean ada@gmail.com?" in asked.text and 'id="keep-typed"' in asked.text
    db.session.expire_all()
    assert ada.email == "ada@example.com"  # nothing saved yet
    kept = agent_client.post(f"/recipients/{ada.id}/edit", data={
        "name": "Ada", "email": "ada@gmial.com", "checked_email": "ada@gmial.com"})
    assert kept.status_code == 303
    db.session.expire_all()
    assert ada.email == "ada@gmial.com"
    agent_client.post(f"/recipients/{ada.id}/edit", data={
        "name": "Ada", "email": "ada@gmail.com", "checked_email": "ada@hotmial.com"})
    db.session.expire_all()
    assert ada.email == "ada@gmail.com"


def test_a_malformed_address_is_refused_and_changes_nothing(agent_client, desk):
    ada = desk.recipient("Ada Lovelace")
    response = agent_client.post(f"/recipients/{ada.id}/edit",
                                 data={"name": "Renamed", "email": "ada@@example"})
    assert response.status_code == 400
    assert "Nothing was changed: ada@@example cannot be used" in response.text
    db.session.expire_all()
    assert (ada.name, ada.email) == ("Ada Lovelace", "ada@example.com")
    assert not entries(recipient_id=ada.id, action="edited")


def test_removing_the_address_makes_it_not_provided(agent_client, desk):
    ada = desk.recipient("Ada Lovelace")
    agent_client.post(f"/recipients/{ada.id}/edit", data={"name": "Ada Lovelace", "email": ""})
    db.session.expire_all()
    assert ada.email is None and ada.status == "not_provided"


def test_a_drafts_recipient_is_saved_without_sending(agent_client, desk, sink):
    frank = desk.recipient("Frank Draft")
    form = page(agent_client.get(f"/recipients/{frank.id}/edit"))
    assert 'id="edit-send"' not in form and "the email goes out when it is published" in form
    before = len(sink.messages)
    agent_client.post(f"/recipients/{frank.id}/edit",
                      data={"name": "Frank", "email": "frank@valley.example", "send": "on"})
    db.session.expire_all()
    assert frank.email == "frank@valley.example" and frank.credential.state.value == "draft"
    assert len(sink.messages) == before


def test_deleting_a_recipient_asks_first_and_keeps_its_history(agent_client, desk):
    bob = desk.recipient("Bob Typo")
    bob_id, course_id = bob.id, bob.credential_id
    confirm = page(agent_client.get(f"/recipients/{bob_id}/delete"))
    assert "Delete Bob Typo &lt;bob@gmial.com&gt;?" in confirm
    assert desk.recipient("Bob Typo") is not None  # asking deletes nothing
    response = agent_client.post(f"/recipients/{bob_id}/delete")
    assert response.headers["Location"] == f"/credentials/{course_id}"
    db.session.expire_all()
    assert db.session.get(Recipient, bob_id) is None
    assert not db.session.scalar(select(func.count()).select_from(Delivery)
                                 .where(Delivery.recipient_id == bob_id))
    assert entries(recipient_id=bob_id)[-1] == (
        "agent@issuer.example", "deleted",
        "Bob Typo <bob@gmial.com> from “Data Science Certificate”")
    assert agent_client.get(f"/recipients/{bob_id}").status_code == 404


def test_deleting_a_credential_removes_its_recipients_deliveries_and_events(agent_client, desk):
    course_id = desk.course.id
    confirm = page(agent_client.get(f"/credentials/{course_id}/delete"))
    assert "its 9 recipients and their delivery history" in confirm
    agent_client.post(f"/credentials/{course_id}/delete")
    db.session.expire_all()
    assert db.session.get(Credential, course_id) is None
    assert not db.session.scalar(select(func.count()).select_from(Recipient)
                                 .where(Recipient.credential_id == course_id))
    assert not db.session.scalar(select(func.count()).select_from(DeliveryEvent)
                                 .where(DeliveryEvent.delivery_id.is_(None)))
    assert entries(credential_id=course_id, action="deleted") == [
        ("agent@issuer.example", "deleted", "“Data Science Certificate” (#1) with 9 recipients")]


def test_the_recipients_timeline_says_who_changed_what(agent_client, desk, sink):
    bob = desk.recipient("Bob Typo")
    agent_client.post(f"/recipients/{bob.id}/resend", data={"email": "bob@gmail.com"})
    html = page(agent_client.get(f"/recipients/{bob.id}"))
    trail = html[html.index('id="audit-trail"'):]
    # Who and what are names from outside: each isolated (bidi), our words around them.
    assert ("<strong><bdi>agent@issuer.example</bdi></strong> resent "
            "<bdi>Bob Typo &lt;bob@gmail.com&gt;") in trail
    assert "fixed the address of <bdi>Bob Typo &lt;bob@gmail.com&gt; (was bob@gmial.com)</bdi>" in trail
    assert ("<strong>helpdesk</strong> published "
            "<bdi>“Data Science Certificate” (#1) with 8 emails") in trail
    assert "created <bdi>“Data Science Certificate” (#1) with 9 recipients" in trail


def test_the_admin_audit_page_lists_and_filters_the_log(app, admin_client, agent_client, desk):
    agent_client.post(f"/credentials/{desk.draft.id}/publish")
    html = page(admin_client.get("/admin/audit"))
    published = html.index("“Leadership Badge” (#2) with 2 emails</bdi></a>")
    assert published < html.index("“Leadership Badge” (#2) with 2 recipients</bdi></a>")
    assert 'href="/credentials/2"><bdi>“Leadership Badge” (#2) with 2 emails' in html
    only = page(admin_client.get("/admin/audit?action=published"))
    assert "(#2) with 2 emails" in only and "with 2 recipients" not in only
    assert admin_client.get("/admin/audit?action=stolen").status_code == 400
    assert agent_client.get("/admin/audit").status_code == 403


def test_the_audit_log_never_links_to_what_was_deleted(app, admin_client, agent_client, desk,
                                                       sink):
    import re

    bob = desk.recipient("Bob Typo")
    bob_id, course_id, draft_id = bob.id, bob.credential_id, desk.draft.id
    agent_client.post(f"/recipients/{bob_id}/resend", data={"email": "bob@gmail.com"})
    agent_client.post(f"/recipients/{bob_id}/delete")
    agent_client.post(f"/credentials/{draft_id}/delete")
    html = page(admin_client.get("/admin/audit"))
    assert f'href="/recipients/{bob_id}"' not in html
    assert f'href="/credentials/{draft_id}"' not in html
    resent = next(row for row in html.split("<tr") if "resent <bdi>Bob Typo" in row)
    assert "(since deleted; " in resent and f'href="/credentials/{course_id}">its credential' \
        in resent
    # Every link the log still shows leads somewhere.
    for link in set(re.findall(r'href="(/(?:recipients|credentials)/\d+)"', html)):
        assert admin_client.get(link).status_code == 200, link


def test_the_audit_log_pages_by_entry_id(app, admin_client):
    from helpdesk import audit

    for n in range(60):
        audit.record("created", f"thing {n}")
    db.session.commit()
    first = page(admin_client.get("/admin/audit"))
    assert "thing 59" in first and "thing 10" in first and "thing 9<" not in first
    older = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = page(admin_client.get(older))
    assert "thing 9<" in second and "thing 0<" in second and "thing 10<" not in second


def test_error_pages_speak_plain_words_not_werkzeugs(agent_client, desk):
    response = agent_client.get("/no-such-page")
    assert response.status_code == 404
    assert "the link may be old, cut short or mistyped" in response.text
    assert "requested URL was not found" not in response.text
    assert agent_client.get("/recipients/999999/edit").status_code == 404
    refused = agent_client.delete("/recipients")
    assert refused.status_code == 405 and "own buttons" in refused.text
    assert "The method is not allowed" not in refused.text

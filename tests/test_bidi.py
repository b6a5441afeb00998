"""Names and addresses with bidi controls (a right-to-left override) cannot turn around the text
beside them: isolated in <bdi> on every page that shows them, taken out of plain-text emails and
CSV exports."""
from __future__ import annotations

import csv
import io
import re

from markupsafe import escape

from desk_data import page
from helpdesk import bidi
from helpdesk.credentials import create_credential
from helpdesk.sharing import create_link

OVERRIDE = "\u202e"
NAME = f"Ann {OVERRIDE}gnp.exe"  # shows as "Ann exe.png" where nothing isolates it
ADDRESS = f"ann{OVERRIDE}@valley.example"  # not a usable address: kept as given, never sent to


def test_every_bidi_control_is_taken_out_of_plain_text():
    controls = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    assert bidi.without_controls(f"a{controls}b") == "ab"
    assert bidi.without_controls("Zoë Ünïcode עברית") == "Zoë Ünïcode עברית"
    assert bidi.without_controls(None) == ""


def test_isolated_escapes_inside_bdi():
    assert bidi.isolated("<b>Ann</b>") == "<bdi>&lt;b&gt;Ann&lt;/b&gt;</bdi>"


def _only_isolated(html: str, text: str) -> None:
    """Wherever the page shows ``text`` as text (not in an attribute, a form's value), it is
    inside <bdi>."""
    shown = str(escape(text))
    text_only = re.sub(r"<(?!/?bdi>)[^>]*>", "<>", html)  # other tags, attributes and all
    assert shown in text_only
    assert text_only.count(shown) == text_only.count(f"<bdi>{shown}</bdi>"), html


def test_every_page_that_shows_a_name_or_address_isolates_it(app, agent_client, sink):
    credential = create_credential("Bidi", [{"name": NAME, "email": ADDRESS},
                                            {"name": "Bob", "email": "bob@valley.example"}],
                                   state="published")
    ann = credential.recipients[0]
    for path in (f"/credentials/{credential.id}", f"/recipients/{ann.id}", "/lookup?q=Ann",
                 "/recipients", f"/recipients/{ann.id}/edit"):
        html = page(agent_client.get(path))
        _only_isolated(html, NAME)
        if "edit" not in path:  # the edit form has the address in its field only
            _only_isolated(html, ADDRESS)
    title = page(agent_client.get(f"/recipients/{ann.id}")).split("<title>")[1].split("<")[0]
    assert OVERRIDE not in title  # a title holds no markup: the control is taken out


def test_the_share_page_and_the_domain_page_isolate_names(app, agent_client, sink):
    create_credential("Bidi", [{"name": NAME, "email": "ann@valley.example"}], state="published")
    _only_isolated(page(agent_client.get("/domains/valley.example")), NAME)
    _only_isolated(page(agent_client.get(f"/share/{create_link('valley.example', 14, None)[1]}")),
                   NAME)


def test_the_email_isolates_the_name_in_html_and_takes_controls_out_of_text(app, sink):
    create_credential("Bidi", [{"name": NAME, "email": "ann@valley.example"}], state="published")
    (message,) = sink.messages
    text = message.email.get_body(("plain",)).get_content()
    html = message.email.get_body(("html",)).get_content()
    assert "Ann gnp.exe" in text and OVERRIDE not in text
    assert f"<bdi>{NAME}</bdi>" in html


def test_the_csv_export_takes_bidi_controls_out(app, agent_client, sink):
    credential = create_credential("Bidi", [{"name": NAME, "email": ADDRESS},
                                            {"name": f"{OVERRIDE}=1+1", "email": None}])
    response = agent_client.get(f"/credentials/{credential.id}/export.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["name"], r["email"]) for r in rows] == [
        ("Ann gnp.exe", "ann@valley.example"), ("'=1+1", "")]


def _outside_bdi(html: str) -> str:
    """The HTML with every <bdi> element taken out, innermost first."""
    while (shorter := re.sub(r"<bdi>[^<]*</bdi>", "", html)) != html:
        html = shorter
    return html


def _flash(response) -> str:
    html = page(response)
    return html[html.index('id="flashes"'):].split("</div>")[0]


def _heading_and_title(html: str) -> tuple[str, str]:
    return html.split("<h1")[1].split("</h1>")[0], html.split("<title>")[1].split("</title>")[0]


def test_messages_and_questions_that_name_someone_isolate_the_name(app, agent_client, sink):
    title = f"Course {OVERRIDE}fdp.exe"
    draft = create_credential(title, [{"name": NAME, "email": "ann@valley.example"},
                                      {"name": "Bob", "email": "bob@valley.example"}])
    draft_id, ann_id = draft.id, draft.recipients[0].id

    # The questions before a change: their headings and sentences isolate the name; the
    # window's title, which holds no markup, has the control taken out.
    for path, value in ((f"/credentials/{draft_id}/publish", title),
                        (f"/recipients/{ann_id}/delete", NAME),
                        (f"/credentials/{draft_id}/delete", title)):
        html = page(agent_client.get(path))
        heading, window_title = _heading_and_title(html)
        assert OVERRIDE in heading and OVERRIDE not in _outside_bdi(heading), path
        assert OVERRIDE not in window_title and value.replace(OVERRIDE, "") in window_title
        assert OVERRIDE not in _outside_bdi(html.split("</h1>")[1]), path

    # The messages after: each outside value is inside <bdi>, our words are not.
    said = [
        _flash(agent_client.post(f"/recipients/{ann_id}/edit", follow_redirects=True,
                                 data={"name": f"{NAME} Jr", "email": "ann@valley.example"})),
        _flash(agent_client.post(f"/credentials/{draft_id}/publish", follow_redirects=True)),
        _flash(agent_client.post(f"/recipients/{ann_id}/delete", follow_redirects=True)),
        _flash(agent_client.post(f"/credentials/{draft_id}/delete", follow_redirects=True)),
    ]
    assert "Saved: <bdi>name “" in said[0]
    assert f"Published “<bdi>{escape(title)}</bdi>”; 2 emails queued." in said[1]
    assert f"Deleted <bdi>{escape(NAME)} Jr &lt;ann@valley.example&gt;</bdi>." in said[2]
    assert f"Deleted “<bdi>{escape(title)}</bdi>”." in said[3]
    for message in said:
        assert OVERRIDE in message and OVERRIDE not in _outside_bdi(message), message

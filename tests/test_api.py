"""The JSON API: every endpoint, every error path, and every response checked against the
OpenAPI document the app serves."""
from __future__ import annotations

import re

import jsonschema_rs
import pytest
from sqlalchemy import func, select

from helpdesk.auth import create_token
from helpdesk.causes import CAUSES
from helpdesk.models import Credential, Delivery, Recipient, db
from helpdesk.status import BOUNCED, NOT_OPENED, NOT_PROVIDED, NOT_SENT, STATUSES

from conftest import PASSWORD

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def openapi_path(rule: str) -> str:
    """``/api/v1/recipients/<int:recipient_id>`` → ``/api/v1/recipients/{recipient_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def api_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")]


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def call(app, api, spec):
    """The Bearer client; every answer must be one the spec documents for that route, method
    and status code, and its body must validate against the documented schema."""
    adapter = app.url_map.bind("localhost")

    def request(method, path, **kwargs):
        response = getattr(api, method.lower())(path, **kwargs)
        assert response.is_json, (response.status_code, response.data[:200])
        route, _ = adapter.match(path.split("?")[0], method=method.upper(), return_rule=True)
        operation = spec["paths"][openapi_path(route.rule)][method.lower()]
        documented = operation["responses"].get(str(response.status_code))
        assert documented, f"{method} {route.rule} answered {response.status_code}, " \
                           f"not in the spec: {response.get_json()}"
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "components": spec["components"],
                  **documented["content"]["application/json"]["schema"]}
        validator = jsonschema_rs.validator_for(schema, validate_formats=True)
        errors = [e.message for e in validator.iter_errors(response.get_json())]
        assert not errors, (method, path, response.get_json(), errors)
        return response

    return request


def credential_body(*recipients, **fields):
    return {"title": "Data Literacy", "state": "draft", "send_email": True,
            "recipients": list(recipients), **fields}


def count(model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


# --- the spec ---------------------------------------------------------------------------------

def test_every_api_route_and_method_is_in_the_spec_and_nothing_else(app, spec):
    served = {(openapi_path(rule.rule), method.lower())
              for rule in api_rules(app) for method in rule.methods & METHODS}
    served.add(("/webhooks/{provider}", "post"))
    documented = {(path, method) for path, operations in spec["paths"].items()
                  for method in operations}
    assert served == documented
    assert spec["openapi"].startswith("3.1")
    referenced = set(re.findall(r"#/components/schemas/(\w+)", str(spec)))
    assert referenced <= set(spec["components"]["schemas"])


def test_the_spec_is_served_without_a_token(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_every_schema_in_the_spec_is_valid_json_schema(spec):
    for name, schema in spec["components"]["schemas"].items():
        jsonschema_rs.validator_for({"components": spec["components"], **schema})


# --- authentication ---------------------------------------------------------------------------

def _private_routes(app):
    for rule in api_rules(app):
        if getattr(app.view_functions[rule.endpoint], "helpdesk_public", False):
            continue
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        path = re.sub(r"<[^>]+>", "example.com", path)
        for method in rule.methods & METHODS:
            yield method, path


@pytest.mark.parametrize("authorization", [None, "Bearer hd_not-a-real-token", "Basic abc",
                                           "Bearer "])
def test_every_private_route_answers_401_without_a_valid_token(app, client, token,
                                                               authorization):
    headers = {"Authorization": authorization} if authorization else {}
    routes = list(_private_routes(app))
    assert len(routes) >= 9
    for method, path in routes:
        response = client.open(path, method=method, json={}, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Bearer" in response.get_json()["error"]
    assert count(Credential) == 0


def test_a_deactivated_users_token_is_refused(client, agent, token):
    agent.active = False
    db.session.commit()
    response = client.get("/api/v1/recipients", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_statuses_are_public_and_come_from_the_registry(client):
    response = client.get("/api/v1/statuses")
    assert response.status_code == 200
    body = response.get_json()
    assert [s["key"] for s in body] == list(STATUSES)
    assert body[0]["label"] == STATUSES[body[0]["key"]].label


def test_statuses_validate_against_the_spec(call):
    call("GET", "/api/v1/statuses")


def test_causes_are_public_with_their_actions_primary_first(client, call):
    body = call("GET", "/api/v1/causes").get_json()
    assert [c["key"] for c in body] == list(CAUSES)
    policy = next(c for c in body if c["key"] == "policy")
    assert policy["actions"][0]["action"] == "allowlist"
    assert policy["resend_helps"] is True
    assert next(c for c in body if c["key"] == "typo")["resend_helps"] is False


# --- creating and reading credentials ---------------------------------------------------------

def test_create_a_draft_credential_and_read_it_back(call):
    response = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": "Ann Lee", "email": "Ann.Lee@Valley.example"},
        {"name": "No Address"},
        {"name": "Null Address", "email": None}))
    assert response.status_code == 201
    created = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/credentials/{created['id']}")
    assert created["title"] == "Data Literacy"
    assert created["state"] == "draft"
    assert created["send_email"] is True
    assert created["scheduled_at"] is None
    assert [(r["name"], r["email"], r["status"]) for r in created["recipients"]] == [
        ("Ann Lee", "Ann.Lee@valley.example", NOT_SENT),
        ("No Address", None, NOT_PROVIDED),
        ("Null Address", None, NOT_PROVIDED)]
    assert created["recipients"][0]["status_label"] == STATUSES[NOT_SENT].label
    again = call("GET", f"/api/v1/credentials/{created['id']}")
    assert again.status_code == 200
    assert created.pop("left_out") == []  # the answer to a create says what it left out
    assert again.get_json() == created


def test_a_scheduled_credential_keeps_its_time_in_utc(call):
    response = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": "Ann", "email": "ann@valley.example"},
        state="scheduled", scheduled_at="2030-01-02T10:00:00+02:00"))
    assert response.status_code == 201
    assert response.get_json()["scheduled_at"] == "2030-01-02T08:00:00+00:00"
    assert response.get_json()["state"] == "scheduled"


def test_a_published_credential_is_sent_at_once(call, sink):
    response = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": "Ann", "email": "ann@valley.example"}, state="published"))
    assert response.status_code == 201
    assert response.get_json()["recipients"][0]["status"] == NOT_OPENED
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]


@pytest.mark.parametrize("body, message", [
    ({"recipients": []}, "title is required"),
    (credential_body(title=5), "title must be a string, not a number"),
    (credential_body(title="   "), "title must not be empty"),
    (credential_body(title="x" * 301), "title is longer than 300 characters"),
    (credential_body(title="a\x00b"), "title contains a NUL character"),
    (credential_body(state="sent"), "state must be draft, scheduled or published, not 'sent'"),
    (credential_body(state=None), "state must be draft, scheduled or published, not null"),
    (credential_body(state="scheduled"), "a scheduled credential needs scheduled_at"),
    (credential_body(state="scheduled", scheduled_at="2030-01-02T10:00:00"),
     "scheduled_at needs a time zone"),
    (credential_body(state="scheduled", scheduled_at="next tuesday"),
     "scheduled_at must be an ISO 8601 date and time"),
    (credential_body(state="scheduled", scheduled_at=1893456000),
     "scheduled_at must be a string or null, not a number"),
    (credential_body(send_email="yes"), "send_email must be true or false, not a string"),
    (credential_body(send_email=1), "send_email must be true or false, not a number"),
    (credential_body(allow_typos="true"), "allow_typos must be true or false, not a string"),
    ({**credential_body(), "recipients": {"name": "Ann"}},
     "recipients must be an array, not an object"),
    (credential_body("ann@valley.example"),
     "recipients[0] must be an object with name and email, not a string"),
    (credential_body({"email": "ann@valley.example"}), "recipients[0].name is required"),
    (credential_body({"name": ["Ann"], "email": "ann@valley.example"}),
     "recipients[0].name must be a string, not an array"),
    (credential_body({"name": "Ann", "email": 42}),
     "recipients[0].email must be a string or null, not a number"),
    (credential_body({"name": "Ann", "email": "a" * 321}),
     "recipients[0].email is longer than 320 characters"),
    (credential_body({"name": "Ann", "mail": "ann@valley.example"}),
     "unknown field 'mail' in recipients[0]; expected: email, name"),
    (credential_body(sendemail=False), "unknown field 'sendemail'"),
])
def test_wrong_input_is_refused_with_a_precise_message_and_nothing_is_created(
        call, sink, body, message):
    response = call("POST", "/api/v1/credentials", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert count(Credential) == 0
    assert count(Recipient) == 0
    assert sink.messages == []


@pytest.mark.parametrize("kwargs, status, message", [
    ({"data": "title=x"}, 415, "Content-Type: application/json"),
    ({"data": "{", "content_type": "application/json"}, 400, "the body is not JSON"),
    ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "the body is not UTF-8 text"),
    ({"json": [1, 2]}, 400, "must be a JSON object"),
    ({"data": "null", "content_type": "application/json"}, 400, "must be a JSON object"),
])
def test_a_body_that_is_not_a_json_object_is_refused(call, kwargs, status, message):
    response = call("POST", "/api/v1/credentials", **kwargs)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_a_body_over_the_size_limit_is_413_in_json(app_factory, sink):
    app = app_factory(sink, MAX_CONTENT_LENGTH=2000)
    with app.app_context():
        from helpdesk.auth import create_user

        token = create_token(create_user("big@issuer.example", PASSWORD))
        response = app.test_client().post(
            "/api/v1/credentials", headers={"Authorization": f"Bearer {token}"},
            json=credential_body(*[{"name": f"R{i}", "email": f"r{i}@valley.example"}
                                   for i in range(100)]))
        assert response.status_code == 413
        assert response.get_json()["error"]
        assert db.session.scalar(select(func.count()).select_from(Credential)) == 0


def test_a_malformed_address_is_kept_and_reported_and_never_sent_to(call, sink):
    response = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": "Ann", "email": "ann@valley.example"},
        {"name": "Bob", "email": "bob at valley"},
        state="published"))
    assert response.status_code == 201
    ann, bob = response.get_json()["recipients"]
    assert bob["email"] == "bob at valley"
    assert "@" in bob["email_error"]
    assert bob["status"] == NOT_SENT
    assert ann["email_error"] is None
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]
    assert db.session.scalar(select(func.count()).select_from(Delivery)
                             .where(Delivery.recipient_id == bob["id"])) == 0


def test_likely_typos_are_answered_422_and_nothing_is_created(call, sink):
    response = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": "Ann", "email": "ann@valley.example"},
        {"name": "Bob", "email": "bob@gmial.com"},
        {"name": "Cy"},
        {"name": "Di", "email": "di@hotmail.con"},
        state="published"))
    assert response.status_code == 422
    body = response.get_json()
    assert body["typos"] == [
        {"index": 1, "email": "bob@gmial.com", "suggestion": "bob@gmail.com"},
        {"index": 3, "email": "di@hotmail.con", "suggestion": "di@hotmail.com"}]
    assert "allow_typos" in body["error"]
    assert count(Credential) == 0
    assert sink.messages == []


def test_a_repeated_address_is_a_question_too_and_reviewed_it_is_left_out(call, sink):
    body = credential_body({"name": "Ann", "email": "ann@valley.example"},
                           {"name": "Ann again", "email": "ANN@valley.example"})
    asked = call("POST", "/api/v1/credentials", json=body)
    assert asked.status_code == 422
    assert asked.get_json()["rows"] == [{"index": 1, "verdict": "duplicate",
                                         "email": "ANN@valley.example",
                                         "reason": "the same address as recipients[0]",
                                         "suggestion": None}]
    assert count(Credential) == 0
    created = call("POST", "/api/v1/credentials", json={**body, "allow_typos": True})
    assert created.status_code == 201
    assert [r["name"] for r in created.get_json()["recipients"]] == ["Ann"]
    assert [v["index"] for v in created.get_json()["left_out"]] == [1]


def test_allow_typos_keeps_the_addresses_as_given_and_sends(call, sink):
    response = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": "Bob", "email": "bob@gmial.com"}, state="published", allow_typos=True))
    assert response.status_code == 201
    bob = response.get_json()["recipients"][0]
    assert bob["email"] == "bob@gmial.com"
    assert bob["status"] == BOUNCED  # the sink refuses gmial.com like a real server would
    assert (bob["cause"], bob["cause_label"]) == ("typo", CAUSES["typo"].label)
    assert bob["evidence"] == ("550 5.1.1 <bob@gmial.com>: Recipient address rejected: "
                               "no such domain")


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "Ann\r\nBcc: evil@x.example",
                                  "Zoë \u202e Ünïcode", "Robert'); DROP TABLE recipient;--"])
def test_hostile_names_are_stored_as_given_and_returned_as_json_strings(call, sink, name):
    response = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": name, "email": "ann@valley.example"}, state="published"))
    assert response.status_code == 201
    assert response.content_type == "application/json"
    recipient_id = response.get_json()["recipients"][0]["id"]
    assert call("GET", f"/api/v1/recipients/{recipient_id}").get_json()["name"] == name
    found = call("GET", "/api/v1/recipients", query_string={"q": name[:6]}).get_json()
    assert [r["name"] for r in found["items"]] == [name]
    # The email went out with the name flattened into one header line.
    (message,) = sink.messages
    assert message.recipients == ["ann@valley.example"]
    assert message.email["Bcc"] is None
    (to,) = message.email["To"].addresses
    assert to.addr_spec == "ann@valley.example"
    assert "\n" not in to.display_name


def test_unknown_objects_are_404_in_json(call, api):
    for path in ("/api/v1/credentials/999", "/api/v1/recipients/999"):
        response = call("GET", path)
        assert response.status_code == 404
        assert "999" in response.get_json()["error"]
    # Past the largest key no route matches: still a 404 in JSON, not a database overflow.
    response = api.get("/api/v1/credentials/99999999999999999999999")
    assert response.status_code == 404 and response.get_json()["error"]
    for path, body in (("/api/v1/recipients/999/resend", {}),
                       ("/api/v1/credentials/999/resend", {"status": BOUNCED}),
                       ("/api/v1/credentials/999/publish", None)):
        response = call("POST", path, json=body)
        assert response.status_code == 404, path
        assert "999" in response.get_json()["error"]


def test_unknown_api_paths_and_methods_answer_json(api):
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.get_json()["error"]
    for method, path in (("delete", "/api/v1/statuses"), ("get", "/api/v1/email/check")):
        response = getattr(api, method)(path)
        assert response.status_code == 405
        assert response.get_json()["error"]


# --- finding recipients -----------------------------------------------------------------------

@pytest.fixture
def roster(call, sink):
    """Two credentials; statuses made for real through the SMTP sink."""
    first = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": "Ann Lee", "email": "ann@valley.example"},
        {"name": "Bob Stone", "email": "bob@gmial.com"},
        {"name": "Cy Young", "email": "cy@valley.example"},
        {"name": "Dee Ray"},
        {"name": "Eve Lee", "email": "eve@Other.example"},
        {"name": "Fay 100%_done", "email": "fay@valley.example"},
        {"name": "Gus Lee", "email": "gus@hotmial.com"},
        state="published", allow_typos=True)).get_json()
    second = call("POST", "/api/v1/credentials", json=credential_body(
        {"name": "Hal Lee", "email": "hal@valley.example"})).get_json()
    return first, second


def ids(response):
    return [r["id"] for r in response.get_json()["items"]]


def test_counts_cover_every_status_for_the_same_filters_without_the_status(call, roster):
    first, second = roster
    everyone = call("GET", "/api/v1/recipients").get_json()
    assert everyone["total"] == 8
    assert everyone["counts"] == {"not_sent": 1, "not_provided": 1, "sending": 0,
                                  "not_opened": 4, "bounced": 2, "opened": 0}
    bounced = call("GET", "/api/v1/recipients", query_string={"status": BOUNCED}).get_json()
    assert [r["name"] for r in bounced["items"]] == ["Bob Stone", "Gus Lee"]
    assert bounced["total"] == 2
    assert bounced["counts"] == everyone["counts"]
    in_first = call("GET", "/api/v1/recipients", query_string={
        "credential_id": first["id"], "status": NOT_OPENED}).get_json()
    assert in_first["total"] == 4
    assert in_first["counts"]["not_sent"] == 0
    assert {r["credential_id"] for r in in_first["items"]} == {first["id"]}


def test_filter_by_domain_and_search(call, roster):
    at_valley = call("GET", "/api/v1/recipients", query_string={"domain": "VALLEY.example "})
    assert [r["name"] for r in at_valley.get_json()["items"]] == [
        "Ann Lee", "Cy Young", "Fay 100%_done", "Hal Lee"]
    assert at_valley.get_json()["counts"]["not_sent"] == 1
    by_name = call("GET", "/api/v1/recipients", query_string={"q": "lee"}).get_json()
    assert [r["name"] for r in by_name["items"]] == ["Ann Lee", "Eve Lee", "Gus Lee", "Hal Lee"]
    by_email = call("GET", "/api/v1/recipients", query_string={"q": "EVE@o"}).get_json()
    assert [r["email"] for r in by_email["items"]] == ["eve@other.example"]
    # LIKE wildcards in q are matched literally.
    assert [r["name"] for r in call("GET", "/api/v1/recipients", query_string={
        "q": "%_"}).get_json()["items"]] == ["Fay 100%_done"]
    nobody = call("GET", "/api/v1/recipients", query_string={"q": "zz", "domain": "valley.example"})
    assert nobody.get_json()["total"] == 0
    assert sum(nobody.get_json()["counts"].values()) == 0


def test_pages_are_ordered_by_id(call, roster):
    everyone = ids(call("GET", "/api/v1/recipients", query_string={"per_page": 200}))
    assert everyone == sorted(everyone) and len(everyone) == 8
    pages = [call("GET", "/api/v1/recipients", query_string={"per_page": 3, "page": page})
             for page in (1, 2, 3, 4)]
    assert [ids(p) for p in pages] == [everyone[0:3], everyone[3:6], everyone[6:8], []]
    assert {p.get_json()["total"] for p in pages} == {8}
    assert pages[1].get_json()["page"] == 2 and pages[1].get_json()["per_page"] == 3


@pytest.mark.parametrize("query, message", [
    ({"page": "0"}, "page must be a whole number from 1"),
    ({"page": "two"}, "page must be a whole number from 1"),
    ({"page": "²"}, "page must be a whole number from 1"),
    ({"page": "-1"}, "page must be a whole number from 1"),
    ({"page": "9" * 30}, "page must be at most"),
    ({"per_page": "201"}, "per_page must be at most 200"),
    ({"credential_id": "1.5"}, "credential_id must be a whole number from 1"),
    ({"status": "lost"}, "status must be one of not_sent, not_provided, sending, not_opened, "
                         "bounced, opened, not 'lost'"),
    ({"q": "a\x00b"}, "NUL character"),
    ({"q": "x" * 321}, "q must be at most 320 characters"),
    ({"stauts": "bounced"}, "unknown parameter 'stauts'; expected: credential_id, domain, page, "
                            "per_page, q, status"),
])
def test_bad_filters_are_400(call, query, message):
    response = call("GET", "/api/v1/recipients", query_string=query)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_a_recipient_shows_its_deliveries_and_their_events(call, roster):
    bob = next(r for r in roster[0]["recipients"] if r["name"] == "Bob Stone")
    detail = call("GET", f"/api/v1/recipients/{bob['id']}").get_json()
    assert detail["status"] == BOUNCED
    (sent,) = detail["deliveries"]
    assert sent["email"] == "bob@gmial.com"
    assert sent["provider"] == "smtp"
    assert [e["type"] for e in sent["events"]] == ["queued", "bounced"]
    assert sent["events"][1]["reason"].startswith("550 5.1.1")


# --- resend -----------------------------------------------------------------------------------

def test_resend_to_a_corrected_address_keeps_the_old_delivery(call, roster, sink):
    bob = next(r for r in roster[0]["recipients"] if r["name"] == "Bob Stone")
    response = call("POST", f"/api/v1/recipients/{bob['id']}/resend",
                    json={"email": "bob@gmail.com"})
    assert response.status_code == 202
    assert response.get_json()["email"] == "bob@gmail.com"
    assert response.get_json()["status"] == NOT_OPENED
    detail = call("GET", f"/api/v1/recipients/{bob['id']}").get_json()
    assert [(d["email"], d["kind"], d["status"]) for d in detail["deliveries"]] == [
        ("bob@gmial.com", "send", BOUNCED), ("bob@gmail.com", "resend", NOT_OPENED)]
    assert sink.messages[-1].recipients == ["bob@gmail.com"]


def test_resend_without_a_body_or_with_an_empty_one_sends_again(call, roster, sink):
    ann = roster[0]["recipients"][0]
    before = len(sink.messages)
    assert call("POST", f"/api/v1/recipients/{ann['id']}/resend").status_code == 202
    assert call("POST", f"/api/v1/recipients/{ann['id']}/resend", json={}).status_code == 202
    assert len(sink.messages) == before + 2


@pytest.mark.parametrize("body, message", [
    ({"email": "bob@@gmail.com"}, "not sent: "),
    ({"email": 7}, "email must be a string, not a number"),
    ({"email": ""}, "email must not be empty"),
    ({"address": "bob@gmail.com"}, "unknown field 'address'"),
])
def test_a_bad_resend_is_400_and_changes_nothing(call, roster, sink, body, message):
    bob = next(r for r in roster[0]["recipients"] if r["name"] == "Bob Stone")
    before = len(sink.messages)
    response = call("POST", f"/api/v1/recipients/{bob['id']}/resend", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    detail = call("GET", f"/api/v1/recipients/{bob['id']}").get_json()
    assert detail["email"] == "bob@gmial.com" and detail["status"] == BOUNCED
    assert len(detail["deliveries"]) == 1
    assert len(sink.messages) == before


def test_resending_a_recipient_without_an_address_is_400(call, roster):
    dee = next(r for r in roster[0]["recipients"] if r["name"] == "Dee Ray")
    response = call("POST", f"/api/v1/recipients/{dee['id']}/resend", json={})
    assert response.status_code == 400
    assert "no email address" in response.get_json()["error"]


def test_resend_a_credentials_recipients_in_one_status(call, roster, sink):
    first = roster[0]
    before = len(sink.messages)
    response = call("POST", f"/api/v1/credentials/{first['id']}/resend",
                    json={"status": BOUNCED})
    assert response.status_code == 202
    # Both bounced at a misspelled domain: resending them unchanged cannot help.
    assert response.get_json() == {"queued": 0, "skipped": {"typo": 2}}
    response = call("POST", f"/api/v1/credentials/{first['id']}/resend",
                    json={"status": BOUNCED, "include_all": True})
    assert response.get_json() == {"queued": 2, "skipped": {}}
    assert len(sink.messages) == before  # still refused by their servers
    response = call("POST", f"/api/v1/credentials/{first['id']}/resend", json={"status": "x"})
    assert response.status_code == 400
    assert "status must be one of" in response.get_json()["error"]
    response = call("POST", f"/api/v1/credentials/{first['id']}/resend", json={})
    assert response.status_code == 400


def test_resend_the_bounced_recipients_at_a_domain(call, roster, sink):
    sink.refuse_domains.pop("gmial.com")  # the domain came to life
    response = call("POST", "/api/v1/domains/GMIAL.com/resend")
    assert response.get_json() == {"queued": 0, "skipped": {"typo": 1}}
    response = call("POST", "/api/v1/domains/GMIAL.com/resend", json={"include_all": True})
    assert response.status_code == 202
    assert response.get_json() == {"queued": 1, "skipped": {}}
    assert sink.messages[-1].recipients == ["bob@gmial.com"]
    assert call("GET", "/api/v1/recipients", query_string={
        "domain": "gmial.com"}).get_json()["items"][0]["status"] == NOT_OPENED


def test_publish_a_draft_sends_it(call, roster, sink):
    second = roster[1]
    response = call("POST", f"/api/v1/credentials/{second['id']}/publish")
    assert response.status_code == 202
    assert response.get_json()["state"] == "published"
    assert response.get_json()["recipients"][0]["status"] == NOT_OPENED
    assert sink.messages[-1].recipients == ["hal@valley.example"]


# --- email checks -----------------------------------------------------------------------------

def test_check_one_address(call):
    response = call("POST", "/api/v1/email/check", json={"email": "ann@gmial.com"})
    assert response.status_code == 200
    check = response.get_json()
    assert check["input"] == "ann@gmial.com"
    assert check["valid"] is True
    assert check["suggestion"] == "ann@gmail.com"
    assert 0 < check["confidence"] <= 1


def test_check_a_batch_of_addresses(call):
    response = call("POST", "/api/v1/email/check",
                    json={"emails": ["ann@valley.example", "bob at valley", ""]})
    assert response.status_code == 200
    good, bad, empty = response.get_json()
    assert good["valid"] and good["normalized"] == "ann@valley.example"
    assert good["suggestion"] is None
    assert not bad["valid"] and bad["error"]
    assert not empty["valid"]


@pytest.mark.parametrize("body, message", [
    ({}, "send either email"),
    ({"email": "a@b.example", "emails": []}, "send either email"),
    ({"email": None}, "email must be a string, not null"),
    ({"emails": "a@b.example"}, "emails must be an array, not a string"),
    ({"emails": ["a@b.example", 3]}, "emails[1] must be a string, not a number"),
    ({"emails": ["a@b.example"] * 1001}, "emails may hold at most 1000 items, not 1001"),
])
def test_bad_email_checks_are_400(call, body, message):
    response = call("POST", "/api/v1/email/check", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


# --- fuzzing from the spec --------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_generated_requests_never_get_a_server_error_and_answers_match_the_spec(
        app, token, roster, mode):
    """Schemathesis generates requests from the spec: valid ones and, in negative mode, ones
    that break it (which must be refused with a 4xx). No answer may be a 500 or undocumented."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    generation = schemathesis.GenerationMode(mode)
    used = [checks.not_a_server_error, checks.status_code_conformance,
            checks.content_type_conformance, checks.response_schema_conformance]
    if mode == "negative":
        used.append(checks.negative_data_rejection)
    operations = [result.ok() for result in schema.get_all_operations()]
    tested = 0
    for operation in operations:
        if not operation.path.startswith("/api/v1/") or (
                # the two registries take no input that could break the spec
                mode == "negative" and operation.path.endswith(("/statuses", "/causes"))):
            continue

        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation))
        def check(case):
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=used)

        check()
        tested += 1
    assert tested >= 9

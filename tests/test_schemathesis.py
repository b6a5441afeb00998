"""Generated input against the published contract: Schemathesis walks ``/openapi.json`` (valid
and invalid requests for every operation, signed in with an API token) and Hypothesis posts
arbitrary JSON and bytes to the webhooks, validly signed. Never a 500, errors always JSON."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from helpdesk.credentials import create_credential

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from common import SendgridSigner, mailgun_body  # noqa: E402

BOUNDED = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
SIGNER = SendgridSigner()


def assert_clean(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"], what


def test_every_api_operation_survives_generated_requests(app, token):
    create_credential("Fuzzed", [{"name": "Ann", "email": "ann@valley.example"}],
                      state="published")
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    auth = {"Authorization": f"Bearer {token}"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @BOUNDED
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                response = case.call(headers=auth)
                assert_clean(response, f"{mode.value} {case.method} {case.formatted_path}")

            try:
                check()
            except Unsatisfiable:
                # An operation with nothing to get wrong (no parameters, no body) has no
                # invalid request to generate.
                assert mode is GenerationMode.NEGATIVE, operation.label


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner,
                                                                 max_size=4),
    max_leaves=20)
sendgrid_event = st.fixed_dictionaries(
    {"event": st.sampled_from(["processed", "delivered", "open", "bounce", "dropped", "what"])
     | st.text(max_size=10),
     "timestamp": st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=12),
     "sg_event_id": st.text(max_size=300)},
    optional={"helpdesk_delivery": json_values, "email": json_values, "type": json_values,
              "reason": json_values, "response": json_values})


@pytest.fixture
def webhook_app(app_factory, sink):
    app = app_factory(sink, SENDGRID_WEBHOOK_PUBLIC_KEY=SIGNER.public_key,
                      MAILGUN_WEBHOOK_SIGNING_KEY="fuzz-signing-key")
    with app.app_context():
        yield app


def test_signed_sendgrid_batches_of_anything_never_break_ingest(webhook_app):
    client = webhook_app.test_client()

    @BOUNDED
    @given(body=st.lists(sendgrid_event, max_size=5) | json_values)
    def check(body):
        raw = json.dumps(body).encode()
        response = client.post("/webhooks/sendgrid", data=raw, headers=SIGNER.headers(raw))
        assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]

    check()


def test_signed_mailgun_events_of_anything_never_break_ingest(webhook_app):
    client = webhook_app.test_client()

    @BOUNDED
    @given(event=st.text(max_size=12), extra=st.dictionaries(st.text(max_size=10), json_values,
                                                              max_size=3))
    def check(event, extra):
        body = json.loads(mailgun_body("fuzz-signing-key", event, "c1", "a@b.example", 1.0))
        body["event-data"].update(extra)
        # Re-signing is not needed: Mailgun signs the timestamp and token, not the body.
        raw = json.dumps(body).encode()
        response = client.post("/webhooks/mailgun", data=raw,
                               headers={"Content-Type": "application/json"})
        assert response.status_code in (200, 406), response.get_data(as_text=True)[:300]

    check()


def test_arbitrary_bytes_to_the_webhooks_are_refused_cleanly(webhook_app):
    client = webhook_app.test_client()

    @BOUNDED
    @given(raw=st.binary(max_size=200), provider=st.sampled_from(["sendgrid", "mailgun"]))
    def check(raw, provider):
        response = client.post(f"/webhooks/{provider}", data=raw,
                               headers=SIGNER.headers(raw) if provider == "sendgrid" else {})
        assert response.status_code in (400, 401, 406), response.get_data(as_text=True)[:300]

    check()

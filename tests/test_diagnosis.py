"""Stored causes: computed where statuses are refreshed, from real SMTP traffic and recorded
provider events, and recomputed for everyone by `helpdesk causes refresh`."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import update

from helpdesk.contract import ProviderEvent
from helpdesk.credentials import create_credential
from helpdesk.ingest import record_events
from helpdesk.models import Recipient, db
from helpdesk.publishing import resend
from helpdesk.sink import SmtpSink
from helpdesk.status import BOUNCED, NOT_OPENED, NOT_SENT, SENDING

from test_smtp import fresh, publish

ALLOWLIST_REPLY = "550 5.7.1 Message rejected: the sender is not on this organisation's allowlist"


def test_a_bounce_at_a_misspelled_domain_stores_the_typo_its_reply_and_the_fix(app, sink):
    [grace] = publish(("Grace Hopper", "grace@gmial.com"))
    grace = fresh(grace)
    assert (grace.status, grace.cause, grace.typo_suggestion) == (BOUNCED, "typo",
                                                                 "grace@gmail.com")
    assert grace.evidence == ("550 5.1.1 <grace@gmial.com>: Recipient address rejected: "
                              "no such domain")
    resend(grace, email="grace@gmail.com")
    grace = fresh(grace)
    assert (grace.status, grace.cause, grace.typo_suggestion) == (NOT_OPENED, "not_opened", None)


def test_addresses_that_cannot_be_sent_to_say_why_before_anything_is_sent(app, sink):
    credential = create_credential("Draft", [{"name": "No one", "email": None},
                                             {"name": "Claude", "email": "not an address"},
                                             {"name": "Ken", "email": "ken@example.org"}])
    causes = [fresh(r).cause for r in credential.recipients]
    assert causes == ["no_address", "invalid_address", "not_sent"]
    assert "@" in fresh(credential.recipients[1]).evidence


@pytest.fixture
def company_sink():
    with SmtpSink(refuse_domains={"globex.example": ALLOWLIST_REPLY},
                  defer_domains=("slowmail.example",)) as s:
        yield s


def test_a_refusal_by_policy_is_stored_as_policy_with_the_servers_words(app_factory,
                                                                        company_sink):
    with app_factory(company_sink).app_context():
        homer, lenny = publish(("Homer", "homer@globex.example"), ("Lenny", "lenny@globex.example"))
        for r in (homer, lenny):
            r = fresh(r)
            assert (r.status, r.cause, r.evidence) == (BOUNCED, "policy", ALLOWLIST_REPLY)
            assert r.typo_suggestion is None


def test_greylisting_is_retrying(app_factory, company_sink):
    with app_factory(company_sink).app_context():
        [frances] = publish(("Frances", "frances@slowmail.example"))
        assert (fresh(frances).status, fresh(frances).cause) == (SENDING, "retrying")
        assert "Greylisted" in fresh(frances).evidence


def test_a_refusal_for_now_past_the_retry_window_is_given_up(app_factory, company_sink):
    with app_factory(company_sink, SEND_RETRY_WINDOW_HOURS=0).app_context():
        [frances] = publish(("Frances", "frances@slowmail.example"))
        assert (fresh(frances).status, fresh(frances).cause) == (NOT_SENT, "gave_up")
        assert "Greylisted" in fresh(frances).evidence


def test_a_complaint_reported_later_changes_the_cause_not_the_status(app, sink):
    [ann] = publish(("Ann", "ann@valley.example"))
    delivery = fresh(ann).deliveries[0]
    record_events([ProviderEvent(
        provider="smtp", type="complained", event_id="fbl-1", correlation_id=delivery.correlation_id,
        occurred_at=datetime.now(timezone.utc), reason="the recipient marked the email as spam")])
    ann = fresh(ann)
    assert (ann.status, ann.cause, ann.evidence) == (
        NOT_OPENED, "complained", "the recipient marked the email as spam")


def test_causes_refresh_diagnoses_everyone_again(app, sink):
    grace, ada = publish(("Grace", "grace@gmial.com"), ("Ada", "ada@example.org"))
    # As after the upgrade that added causes: every row "not sent".
    db.session.execute(update(Recipient).values(cause="not_sent", evidence=None,
                                                typo_suggestion=None))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["causes", "refresh"])
    assert result.exit_code == 0, result.output
    assert "2 changed" in result.output
    assert [fresh(grace).cause, fresh(ada).cause] == ["typo", "not_opened"]
    assert fresh(grace).typo_suggestion == "grace@gmail.com"
    again = app.test_cli_runner().invoke(args=["causes", "refresh"])
    assert "0 changed" in again.output

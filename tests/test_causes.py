"""The diagnosis: the registry of causes, the pure function that picks a recipient's cause, and
each cause reached from events in the formats they really arrive in (replies of a real SMTP
server, SendGrid's and Mailgun's webhook payloads, delivery status notifications)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk.causes import (CAUSES, NO_NUDGE, STATUS_CAUSES, DeliveryFacts, Diagnosis,
                             EventFacts, diagnose, reply_reason, status_tips)
from helpdesk.contract import REASON_CODES, Message
from helpdesk.sink import SmtpSink
from helpdesk.status import STATUSES, DeliveryOutcome, delivery_status, email_status
from helpdesk_mailgun.webhook import to_event as mailgun_event
from helpdesk_sendgrid.webhook import to_event as sendgrid_event
from helpdesk_smtp import SmtpProvider
from helpdesk_smtp.bounces import parse_bounce

from test_dsn import fixture as dsn_fixture
from test_mailgun import event_data, failed_permanent, failed_temporary, opened, rejected
from test_sendgrid import doc_event

# Before the fixed timestamps of the webhook payloads, which happen after these events.
T0 = datetime(2017, 1, 2, 9, 0, tzinfo=timezone.utc)
ADDRESS = "ann@valley.example"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(type_: str, seconds: float = 0, **fields) -> EventFacts:
    return EventFacts(type_, at(seconds), **fields)


def diagnosis(*events, email=ADDRESS, suggestion=None, earlier=(),
              reports_deliveries=False) -> Diagnosis:
    """The diagnosis of a published recipient whose latest delivery had these events."""
    return diagnose(email=email, email_error=None, published=True,
                    suggest=lambda address, _domain_unknown: {email: suggestion}.get(address),
                    deliveries=[*earlier, DeliveryFacts(email, tuple(events),
                                                        reports_deliveries)])


def facts(provider_event) -> EventFacts:
    return EventFacts.of(provider_event)


# --- the registry -----------------------------------------------------------------------------

ACTION_KEYS = {"fix_address", "allowlist", "resend", "nudge", "send_now", "unsuppress"}


def test_the_registry_holds_every_cause_the_desk_must_tell_apart():
    assert set(CAUSES) >= {
        "typo", "mailbox_unknown", "domain_unknown", "policy", "spam_content", "mailbox_full",
        "retrying", "gave_up", "suppressed", "complained", "unsubscribed", "invalid_address",
        "no_address", "refused_by_service", "not_opened", "opened", "machine_opened",
        "not_sent", "sending"}
    assert len({c.label for c in CAUSES.values()}) == len(CAUSES)
    assert not {c.label for c in CAUSES.values()} & {s.label for s in STATUSES.values()}
    for cause in CAUSES.values():
        assert cause.explanation and cause.label
        assert {a.action for a in cause.actions} - {None} <= ACTION_KEYS, cause.key
    assert NO_NUDGE <= set(CAUSES)


def test_resending_unchanged_cannot_help_where_the_address_or_the_recipient_says_no():
    cannot = {k for k, c in CAUSES.items() if not c.resend_helps}
    assert {"typo", "mailbox_unknown", "domain_unknown", "suppressed", "complained",
            "unsubscribed", "invalid_address", "no_address"} <= cannot
    assert not {"policy", "mailbox_full", "gave_up", "not_opened"} & cannot


def test_the_primary_action_follows_the_cause_not_the_status():
    # Every bounce used to offer "Fix the address" first, the allowlist case included.
    assert CAUSES["policy"].primary.action == "allowlist"
    assert CAUSES["typo"].primary.action == "fix_address"
    assert CAUSES["suppressed"].primary.action == "unsuppress"
    assert CAUSES["mailbox_full"].primary.action == "resend"
    assert CAUSES["complained"].primary.action is None
    assert CAUSES["invalid_address"].primary.action == "fix_address"
    assert "send_now" not in {a.action for a in CAUSES["invalid_address"].actions}


# --- reading servers' words -------------------------------------------------------------------

@pytest.mark.parametrize("reply, reason, temporary", [
    ("550 5.1.1 <g@gmial.com>: Recipient address rejected: no such domain", "host_unknown", False),
    ("550 5.7.1 Message rejected: the sender is not on this organisation's allowlist", "policy",
     False),
    ("451 4.7.1 <f@slowmail.example>: Greylisted, try again later", "temporary", True),
    ("550 5.7.1 Service unavailable; client host blocked using Spamhaus", "policy", False),
    ("552 5.2.2 The email account that you tried to reach is over quota", "mailbox_full", False),
    ("550 5.2.1 The email account that you tried to reach is disabled", "suspended", False),
    ("550-5.7.1 Gmail has detected that this message is likely unsolicited mail. To reduce the "
     "amount of spam sent to Gmail, this message has been blocked", "spam", False),
    ("550 5.7.26 This message fails to pass authentication checks (SPF or DKIM)", "policy", False),
    ("605 Not delivering to previously bounced address", "suppressed", False),
    ("550 5.1.1 <bob@spamfree.example.org>: user unknown", "user_unknown", False),
    ("554 5.4.4 unrouteable address", "host_unknown", False),
    ("550 5.6.0 something new", "spam", False),
    ("550 5.0.0 hmm", None, False),
])
def test_a_reply_is_read_by_its_words_then_its_codes(reply, reason, temporary):
    assert reply_reason(reply) == (reason, temporary)


def test_a_parsers_reason_code_and_severity_win_over_the_words():
    got = diagnosis(event("bounced", reason_code="mailbox_full", severity="permanent",
                          mta_response="550 5.1.1 user unknown"))
    assert got.cause == "mailbox_full"
    # Every reason a bounce can give has its own cause ("machine_open" is an open's).
    assert set(REASON_CODES) - {"other", "too_large", "machine_open"} <= {
        r for r in REASON_CODES if diagnosis(event("bounced", reason_code=r)).cause
        != "bounced_other"} | {"temporary"}


# --- each cause from the real formats ---------------------------------------------------------

def smtp_answer(sink: SmtpSink, to: str):
    provider = SmtpProvider({"SMTP_HOST": sink.host, "SMTP_PORT": sink.port, "SMTP_TIMEOUT": 5})
    try:
        return provider.send(Message("c0ffee" * 5 + "00", "credentials@issuer.example", to,
                                     "Ann", "Your credential", "Hello", "<p>Hello</p>"))
    finally:
        provider.close()


@pytest.fixture(scope="module")
def company_sink():
    replies = {"gmial.com": None, "globex.example": "550 5.7.1 Message rejected: the sender is "
               "not on this organisation's allowlist", "full.example": "552 5.2.2 Mailbox full",
               "nobody.example": "550 5.1.1 <x@nobody.example>: Recipient address rejected: "
               "User unknown in local recipient table"}
    with SmtpSink(refuse_domains=replies, defer_domains=("slowmail.example",)) as sink:
        yield sink


def answered(result, *, retries: int = 0) -> list[EventFacts]:
    """The events the queue records for an SMTP answer (``helpdesk.sending``): deferrals, then,
    past the retry window, the delivery expired."""
    events = [event("queued")]
    if result.outcome == "deferred":
        events += [event("deferred", n + 1, severity="temporary", reason_code="temporary",
                         reason=result.reason, mta_response=result.reason)
                   for n in range(retries + 1)]
        if retries:
            events.append(event("expired", retries + 2, severity="temporary",
                                reason_code="expired", mta_response=result.reason,
                                reason="gave up after 5 days of temporary refusals; the last: "
                                       + result.reason))
        return events
    return events + [event(result.outcome, 1, reason=result.reason or None,
                           mta_response=result.reason or None)]


@pytest.mark.parametrize("to, suggestion, cause", [
    ("grace@gmial.com", "grace@gmail.com", "typo"),
    ("homer@globex.example", None, "policy"),
    ("ann@full.example", None, "mailbox_full"),
    ("ann@nobody.example", None, "mailbox_unknown"),
    ("ann@gmial.com", None, "domain_unknown"),  # without a suggestion: a domain with no mail
    ("ann@valley.example", None, "not_opened"),
])
def test_causes_from_a_real_smtp_servers_replies(company_sink, to, suggestion, cause):
    got = diagnosis(*answered(smtp_answer(company_sink, to)), email=to, suggestion=suggestion)
    assert got.cause == cause
    assert got.suggestion == (suggestion if cause == "typo" else None)


def test_greylisting_is_retrying_then_given_up_once_the_retries_run_out(company_sink):
    result = smtp_answer(company_sink, "frances@slowmail.example")
    retrying = diagnosis(*answered(result), email="frances@slowmail.example")
    assert (retrying.cause, retrying.evidence) == (
        "retrying", "451 4.7.1 <frances@slowmail.example>: Greylisted, try again later")
    gave_up = diagnosis(*answered(result, retries=2), email="frances@slowmail.example")
    assert gave_up.cause == "gave_up"
    assert gave_up.evidence.startswith("gave up after 5 days of temporary refusals; the last: "
                                       "451 4.7.1")


def test_the_allowlist_refusal_is_the_evidence_word_for_word(company_sink):
    got = diagnosis(*answered(smtp_answer(company_sink, "lenny@globex.example")),
                    email="lenny@globex.example")
    assert got.evidence == ("550 5.7.1 Message rejected: the sender is not on this "
                            "organisation's allowlist")


@pytest.mark.parametrize("payload, cause", [
    (doc_event("bounce"), "mailbox_unknown"),  # "500 unknown recipient" (Invalid Address)
    (doc_event("dropped"), "suppressed"),  # "Bounced Address": on SendGrid's bounce list
    (doc_event("dropped", reason="Unsubscribed Address"), "suppressed"),
    (doc_event("dropped", reason="Spam Reporting Address"), "suppressed"),
    (doc_event("bounce", reason="550 5.7.1 Message rejected: the sender is not on this "
               "organisation's allowlist", status="5.7.1", bounce_classification="Reputation"),
     "policy"),
    (doc_event("bounce", reason="552 5.2.2 The email account that you tried to reach is over "
               "quota", status="5.2.2", bounce_classification="Mailbox Unavailable"),
     "mailbox_full"),
    (doc_event("bounce", reason="550 5.7.1 [IP] Our system has detected that this message is "
               "likely unsolicited mail", status="5.7.1", bounce_classification="Content"),
     "spam_content"),
    (doc_event("blocked"), "retrying"),  # a soft bounce
    (doc_event("deferred"), "retrying"),
    (doc_event("delivered"), "not_opened"),
    (doc_event("open"), "opened"),
    (doc_event("open", sg_machine_open=True), "machine_opened"),
    (doc_event("spamreport"), "complained"),
    (doc_event("unsubscribe"), "unsubscribed"),
    (doc_event("group_unsubscribe"), "unsubscribed"),
])
def test_causes_from_sendgrid_webhook_events(payload, cause):
    got = diagnosis(event("queued", -5), event("accepted", -4), facts(sendgrid_event(payload)),
                    reports_deliveries=True)
    assert got.cause == cause


@pytest.mark.parametrize("payload, cause", [
    (failed_permanent(), "mailbox_unknown"),
    (failed_temporary(), "retrying"),
    (rejected(), "refused_by_service"),
    (event_data("failed", severity="permanent", reason="suppress-bounce", **{
        "delivery-status": {"code": 605, "message": "Not delivering to previously bounced "
                            "address", "description": "", "attempt-no": 1}}), "suppressed"),
    (event_data("failed", severity="permanent", reason="suppress-complaint", **{
        "delivery-status": {"code": 606, "message": "Not delivering to a user who marked your "
                            "messages as spam", "description": "", "attempt-no": 1}}),
     "suppressed"),
    (event_data("failed", severity="permanent", reason="bounce", **{
        "delivery-status": {"code": 550, "message": "5.7.1 Message rejected: the sender is not "
                            "on this organisation's allowlist", "description": "",
                            "attempt-no": 1}}), "policy"),
    (event_data("failed", severity="permanent", reason="old", **{
        "delivery-status": {"code": 421, "message": "4.4.2 Too many retries, message expired",
                            "description": "", "attempt-no": 8}}), "gave_up"),
    (opened(), "opened"),
    (event_data("complained"), "complained"),
    (event_data("unsubscribed"), "unsubscribed"),
])
def test_causes_from_mailgun_webhook_events(payload, cause):
    got = diagnosis(event("queued", -5), event("accepted", -4), facts(mailgun_event(payload)),
                    reports_deliveries=True)
    assert got.cause == cause


def test_a_mailgun_sandbox_rejection_is_the_services_refusal_not_the_addresses():
    # Mailgun's "rejected" never reached a server: its reason is the service's own.
    got = diagnosis(event("queued"), facts(mailgun_event(rejected())))
    assert got.evidence == "Sandbox subdomains are for test purposes only."


@pytest.mark.parametrize("name, causes", [
    ("gmail-failed.eml", {"mailbox_unknown"}),
    ("postfix-failed.eml", {"mailbox_unknown"}),
    ("exim-failed.eml", {"policy"}),
    ("outlook-com-failed.eml", {"mailbox_full"}),
    ("not-ours.eml", {"domain_unknown"}),
    ("global-utf8.eml", {"mailbox_unknown"}),
    ("postfix-delayed.eml", {"retrying"}),
    ("exchange-online-group.eml", {"mailbox_unknown", "mailbox_full", "not_opened"}),
])
def test_causes_from_delivery_status_notifications(name, causes):
    found = {diagnosis(event("queued", -86400), event("accepted", -86400), facts(e),
                       email=e.recipient).cause for e in parse_bounce(dsn_fixture(name))}
    assert found == causes


# --- the rules between events and deliveries --------------------------------------------------

def test_no_address_and_an_invalid_one_come_before_anything_sent():
    assert diagnose(email=None, email_error=None, published=True, deliveries=[]).cause \
        == "no_address"
    got = diagnose(email="not an address", email_error="An email address must have an @-sign.",
                   published=True, deliveries=[])
    assert (got.cause, got.evidence) == ("invalid_address",
                                         "An email address must have an @-sign.")
    assert diagnose(email=ADDRESS, email_error=None, published=False, deliveries=[]).cause \
        == "not_sent"


def test_a_complaint_outweighs_an_open_and_survives_a_resend_to_the_same_address():
    first = DeliveryFacts(ADDRESS, (event("accepted"), event("opened", 60),
                                    event("complained", 120)))
    assert diagnosis(event("queued", 200), earlier=[first]).cause == "complained"
    # A new address is a new start.
    got = diagnose(email="ann@new.example", email_error=None, published=True,
                   deliveries=[first, DeliveryFacts("ann@new.example", (event("accepted"),))])
    assert got.cause == "not_opened"


def test_accepted_by_a_service_that_reports_deliveries_is_still_on_its_way():
    assert diagnosis(event("queued"), event("accepted", 1), reports_deliveries=True).cause \
        == "sending"
    assert diagnosis(event("queued"), event("accepted", 1), event("delivered", 2),
                     reports_deliveries=True).cause == "not_opened"
    # SMTP knows no more than the next hop's 250.
    assert diagnosis(event("queued"), event("accepted", 1)).cause == "not_opened"


def test_a_later_resubscribe_undoes_an_unsubscribe():
    assert diagnosis(event("accepted"), event("unsubscribed", 5)).cause == "unsubscribed"
    assert diagnosis(event("accepted"), event("unsubscribed", 5),
                     event("resubscribed", 9)).cause == "not_opened"


def test_a_click_seconds_after_delivery_is_a_link_scanner():
    assert diagnosis(event("delivered"), event("clicked", 3)).cause == "machine_opened"
    assert diagnosis(event("delivered"), event("clicked", 3),
                     event("opened", 3600)).cause == "opened"
    assert diagnosis(event("delivered"), event("clicked", 600)).cause == "opened"


def test_an_open_is_a_machines_by_the_events_own_flag_not_by_its_words():
    said = event("opened", 5, reason="tracking pixel, fetched by a mail-privacy proxy",
                 reason_code="machine_open")
    assert diagnosis(event("delivered"), said) == Diagnosis(
        "machine_opened", "tracking pixel, fetched by a mail-privacy proxy")
    words_only = event("opened", 5, reason="a machine open, maybe")
    assert diagnosis(event("delivered"), words_only).cause == "opened"
    assert diagnosis(event("delivered"), said, event("opened", 900)).cause == "opened"


def test_a_typo_is_only_the_cause_when_the_bounce_does_not_say_otherwise():
    no_domain = event("bounced", mta_response="550 5.1.1 Recipient address rejected: no such "
                      "domain")
    policy = event("bounced", mta_response="550 5.7.1 Message rejected by policy")
    assert diagnosis(no_domain, email="a@gmial.com", suggestion="a@gmail.com") == Diagnosis(
        "typo", "550 5.1.1 Recipient address rejected: no such domain", "a@gmail.com")
    assert diagnosis(policy, email="a@gmial.com", suggestion="a@gmail.com").cause == "policy"


# --- a pure function of the set of events -----------------------------------------------------

POOL = [
    event("queued"), event("accepted", 1), event("delivered", 2), event("opened", 30),
    event("clicked", 4), event("opened", 5, reason="machine open (Apple Mail Privacy Protection)",
                               reason_code="machine_open"),
    event("deferred", 2, severity="temporary", mta_response="451 4.7.1 Greylisted"),
    event("deferred", 3, severity="temporary", mta_response="421 4.4.2 timed out"),
    event("bounced", 6, mta_response="550 5.1.1 user unknown"),
    event("bounced", 6, mta_response="552 5.2.2 mailbox full"),
    event("bounced", 7, reason_code="policy", severity="permanent"),
    event("rejected", 8, reason="Bounced Address"), event("refused", 2, reason="bad key"),
    event("complained", 40), event("unsubscribed", 41), event("resubscribed", 41),
    event("resubscribed", 45), event("unknown", 9),
]
deliveries_strategy = st.lists(
    st.tuples(st.sampled_from([ADDRESS, "ann@gmial.com"]),
              st.lists(st.sampled_from(POOL), max_size=8)), min_size=1, max_size=3)


def recipient_diagnosis(deliveries) -> Diagnosis:
    email = deliveries[-1][0]
    return diagnose(email=email, email_error=None, published=True,
                    suggest=lambda address, _domain_unknown: {
                        "ann@gmial.com": "ann@gmail.com"}.get(address),
                    deliveries=[DeliveryFacts(e, tuple(evs)) for e, evs in deliveries])


@given(deliveries_strategy, st.randoms(use_true_random=False))
def test_the_cause_ignores_the_order_events_arrive_in(deliveries, rnd):
    shuffled = [(e, rnd.sample(evs, len(evs))) for e, evs in deliveries]
    assert recipient_diagnosis(shuffled) == recipient_diagnosis(deliveries)


@given(deliveries_strategy, st.lists(st.integers(min_value=0, max_value=20), max_size=10))
def test_the_cause_ignores_repeated_events(deliveries, repeats):
    repeated = [(e, evs + [evs[i % len(evs)] for i in repeats if evs]) for e, evs in deliveries]
    assert recipient_diagnosis(repeated) == recipient_diagnosis(deliveries)


@given(deliveries_strategy)
def test_every_diagnosis_names_a_registered_cause_with_one_line_of_evidence(deliveries):
    got = recipient_diagnosis(deliveries)
    assert got.cause in CAUSES
    assert got.evidence and "\n" not in got.evidence
    assert (got.suggestion is not None) == (got.cause == "typo")


def test_the_evidence_is_json_safe_text():
    got = diagnosis(event("bounced", mta_response="550  5.1.1\n  user\tunknown"))
    assert json.loads(json.dumps(got.evidence)) == "550 5.1.1 user unknown"


def test_the_suggester_hears_whether_the_bounce_said_the_domain_does_not_exist():
    def asked(*events) -> list[bool]:
        heard = []
        diagnose(email=ADDRESS, email_error=None, published=True,
                 suggest=lambda _address, domain_unknown: heard.append(domain_unknown),
                 deliveries=[DeliveryFacts(ADDRESS, events)])
        return heard

    assert asked(event("bounced", mta_response="550 5.1.2 Host unknown")) == [True]
    assert asked(event("deferred", severity="temporary",
                       mta_response="450 4.1.2 no such domain")) == [True]
    assert asked(event("bounced", mta_response="550 5.1.1 user unknown")) == [False]
    assert asked(event("bounced", mta_response="550 5.7.1 blocked by policy")) == []


@given(deliveries_strategy)
def test_every_cause_is_one_its_status_can_have(deliveries):
    """The help center's quick tips for a status are its causes' (``STATUS_CAUSES``)."""
    status = email_status(email=deliveries[-1][0], published=True, deliveries=[
        DeliveryOutcome(e, delivery_status(ev.type for ev in evs)) for e, evs in deliveries])
    assert recipient_diagnosis(deliveries).cause in STATUS_CAUSES[status]


def test_every_cause_belongs_to_a_status_and_every_status_has_tips_but_opened():
    assert {c for keys in STATUS_CAUSES.values() for c in keys} == set(CAUSES)
    assert set(STATUS_CAUSES) == set(STATUSES)
    assert status_tips("bounced")[:2] == (CAUSES["typo"].primary, CAUSES["mailbox_unknown"].primary)
    assert all(status_tips(s) for s in STATUSES)

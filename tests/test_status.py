"""The status engine: the registry and the pure join."""
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from helpdesk.status import (BOUNCED, EVENT_TYPES, LEVELS, NOT_OPENED, NOT_PROVIDED, NOT_SENT,
                             OPENED, SENDING, STATUSES, DeliveryOutcome, delivery_status,
                             email_status, join)

event_lists = st.lists(st.sampled_from(EVENT_TYPES), max_size=12)


def test_registry_has_the_six_statuses_each_with_its_own_icon_and_label():
    assert set(STATUSES) == {NOT_SENT, NOT_PROVIDED, SENDING, NOT_OPENED, BOUNCED, OPENED}
    assert len({s.icon for s in STATUSES.values()}) == 6
    assert len({s.glyph for s in STATUSES.values()}) == 6
    assert len({s.label for s in STATUSES.values()}) == 6
    assert all(s.meaning for s in STATUSES.values())


@given(event_lists, st.randoms())
def test_any_permutation_of_a_deliverys_events_gives_the_same_status(events, rnd):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert delivery_status(shuffled) == delivery_status(events)


@given(event_lists, st.lists(st.integers(min_value=0, max_value=11)))
def test_any_duplication_of_events_gives_the_same_status(events, repeats):
    duplicated = list(events) + [events[i % len(events)] for i in repeats if events]
    assert delivery_status(duplicated) == delivery_status(events)


@given(event_lists, event_lists)
def test_status_is_monotone_more_events_never_lower_it(before, after):
    rank = LEVELS.index
    assert rank(delivery_status(before + after)) >= rank(delivery_status(before))


def test_levels_of_single_events():
    assert delivery_status([]) == SENDING
    assert delivery_status(["queued"]) == SENDING
    assert delivery_status(["queued", "accepted"]) == NOT_OPENED
    assert delivery_status(["queued", "delivered", "opened"]) == OPENED
    assert delivery_status(["clicked"]) == OPENED
    assert delivery_status(["queued", "refused"]) == NOT_SENT
    assert delivery_status(["accepted", "bounced"]) == BOUNCED
    assert delivery_status(["rejected"]) == BOUNCED


def test_deferrals_and_soft_trouble_never_bounce():
    assert delivery_status(["queued", "deferred", "deferred"]) == SENDING
    assert delivery_status(["accepted", "deferred", "complained", "unknown"]) == NOT_OPENED
    # Refused for now until the retry window ran out: given up, not sent, never bounced.
    assert delivery_status(["queued", "deferred", "deferred", "expired"]) == NOT_SENT


def test_an_open_after_a_bounce_report_wins():
    # A provider can report a bounce late for a message that was in fact read.
    assert delivery_status(["opened", "bounced"]) == OPENED


def outcome(email, *events):
    return DeliveryOutcome(email, delivery_status(events))


def test_not_provided_takes_precedence_over_not_sent():
    assert email_status(email=None, published=False, deliveries=[]) == NOT_PROVIDED
    assert email_status(email="", published=True, deliveries=[]) == NOT_PROVIDED


def test_not_sent_until_published_or_sent():
    assert email_status(email="a@x.example", published=False, deliveries=[]) == NOT_SENT
    assert email_status(email="a@x.example", published=True, deliveries=[]) == NOT_SENT


def test_resend_to_a_fixed_address_follows_the_new_delivery():
    bounced = outcome("ann@gmial.com", "queued", "bounced")
    deliveries = [bounced]
    assert email_status(email="ann@gmial.com", published=True, deliveries=deliveries) == BOUNCED
    deliveries = [bounced, outcome("ann@gmail.com", "queued")]
    assert email_status(email="ann@gmail.com", published=True, deliveries=deliveries) == SENDING
    deliveries = [bounced, outcome("ann@gmail.com", "queued", "accepted")]
    assert email_status(email="ann@gmail.com", published=True,
                        deliveries=deliveries) == NOT_OPENED


def test_nudge_then_open_of_the_first_email_is_opened():
    first = outcome("bo@x.example", "queued", "accepted", "opened")
    nudge = outcome("bo@x.example", "queued", "accepted")
    assert email_status(email="bo@x.example", published=True,
                        deliveries=[first, nudge]) == OPENED


def test_an_open_at_an_old_address_does_not_count_for_a_new_one():
    old = outcome("bo@old.example", "accepted", "opened")
    new = outcome("bo@new.example", "accepted", "bounced")
    assert email_status(email="bo@new.example", published=True, deliveries=[old, new]) == BOUNCED


@given(st.lists(st.tuples(st.sampled_from(["a@x.example", "b@x.example"]), event_lists),
                min_size=1, max_size=4), st.randoms())
def test_recipient_status_ignores_event_order_within_each_delivery(deliveries, rnd):
    def status(ds):
        return email_status(email="a@x.example", published=True,
                            deliveries=[outcome(e, *evs) for e, evs in ds])

    shuffled = [(e, rnd.sample(evs, len(evs))) for e, evs in deliveries]
    assert status(shuffled) == status(deliveries)


# --- what mutation testing found unchecked --------------------------------------------------

def test_a_refused_send_is_below_an_acceptance_and_above_a_queued_one():
    assert join(NOT_SENT, NOT_OPENED) == NOT_OPENED == join(NOT_OPENED, NOT_SENT)
    assert join(SENDING, NOT_SENT) == NOT_SENT


def test_an_unpublished_credential_is_not_sent_whatever_its_deliveries():
    opened = [DeliveryOutcome("ann@valley.example", OPENED)]
    assert email_status(email="ann@valley.example", published=False,
                        deliveries=opened) == NOT_SENT
    assert email_status(email="ann@valley.example", published=True, deliveries=opened) == OPENED


def test_every_status_icon_is_a_symbol_of_the_sprite():
    sprite = (Path(__file__).resolve().parents[1] / "templates" / "_icons.html").read_text()
    symbols = set(re.findall(r'<symbol id="([^"]+)"', sprite))
    assert {s.icon for s in STATUSES.values()} <= symbols
    assert len({s.icon for s in STATUSES.values()}) == len(STATUSES)

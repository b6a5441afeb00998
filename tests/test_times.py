"""Times as the viewer reads them: the zone list, exact and relative times (pure), and the pages
showing them in the zone a user chose once."""
from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta, timezone

import pytest

from desk_data import page
from helpdesk import times
from helpdesk.credentials import create_credential
from helpdesk.models import Recipient, User, db

NOW = datetime(2026, 12, 2, 14, 30, tzinfo=timezone.utc)


# --- the zone list ------------------------------------------------------------------------------

def test_the_zone_list_is_short_current_and_starts_with_utc():
    zones = times.time_zones()
    assert zones[0] == "UTC" and len(set(zones)) == len(zones)
    assert 300 < len(zones) < len(zoneinfo.available_timezones())
    for current in ("Europe/Kyiv", "Asia/Kolkata", "America/Argentina/Buenos_Aires",
                    "Europe/Amsterdam", "America/New_York", "Australia/Sydney"):
        assert current in zones
    # Deprecated aliases and abstractions nobody lives in are not offered.
    for alias in ("Europe/Kiev", "Asia/Calcutta", "America/Buenos_Aires", "US/Eastern",
                  "Etc/GMT+5", "CET", "Zulu", "GB", "Asia/Saigon"):
        assert alias not in zones
    assert all(z == "UTC" or z.partition("/")[0] in times.AREAS for z in zones)
    assert list(zones[1:]) == sorted(zones[1:])


def test_an_unknown_or_missing_zone_reads_as_utc():
    assert times.zone(None).key == "UTC"
    assert times.zone("Mars/Olympus_Mons").key == "UTC"
    assert times.zone("Europe/Kiev").key == "UTC"  # no longer on the list
    assert times.zone("Asia/Tokyo").key == "Asia/Tokyo"


def test_a_zone_is_labelled_by_its_place_and_its_offset_now():
    assert times.zone_label("America/New_York", NOW) == "America/New York (UTC\u221205:00)"
    assert times.zone_label("America/New_York", NOW.replace(month=7)) == \
        "America/New York (UTC\u221204:00)"
    assert times.zone_label("Asia/Kolkata", NOW) == "Asia/Kolkata (UTC+05:30)"
    assert times.zone_label("UTC", NOW).startswith("UTC")


# --- exact and relative times -------------------------------------------------------------------

@pytest.mark.parametrize("zone, shown", [
    ("UTC", "2026-12-02 14:30 UTC"),
    ("Europe/Paris", "2026-12-02 15:30 CET"),
    ("America/New_York", "2026-12-02 09:30 EST"),
    ("Asia/Dubai", "2026-12-02 18:30 UTC+04:00"),  # its abbreviation is only "+04"
    ("Asia/Kolkata", "2026-12-02 20:00 IST"),
    ("Pacific/Auckland", "2026-12-03 03:30 NZDT"),  # the next day there
])
def test_an_exact_time_is_in_the_viewers_zone(zone, shown):
    assert times.exact(NOW, zoneinfo.ZoneInfo(zone)) == shown


@pytest.mark.parametrize("ago, said", [
    (timedelta(seconds=0), "just now"),
    (timedelta(seconds=44), "just now"),
    (timedelta(seconds=50), "1 minute ago"),
    (timedelta(minutes=2, seconds=10), "2 minutes ago"),
    (timedelta(minutes=44), "44 minutes ago"),
    (timedelta(minutes=50), "1 hour ago"),
    (timedelta(hours=3, minutes=10), "3 hours ago"),
    (timedelta(hours=21), "21 hours ago"),
    (timedelta(hours=23), "1 day ago"),
    (timedelta(days=4, hours=5), "4 days ago"),
    (timedelta(days=27), "1 month ago"),
    (timedelta(days=95), "3 months ago"),
    (timedelta(days=330), "1 year ago"),
    (timedelta(days=800), "2 years ago"),
    (-timedelta(hours=2), "in 2 hours"),
    (-timedelta(days=14), "in 14 days"),
])
def test_a_relative_time_says_how_long_ago_as_people_do(ago, said):
    assert times.relative(NOW - ago, NOW) == said


def test_a_stamp_keeps_the_moment_in_utc_for_machines():
    stamp = times.stamp(NOW - timedelta(hours=3), zoneinfo.ZoneInfo("Europe/Paris"), NOW)
    assert stamp.iso == "2026-12-02T11:30:00+00:00"
    assert stamp.exact == "2026-12-02 12:30 CET" and stamp.relative == "3 hours ago"
    with pytest.raises(ValueError):
        times.stamp(NOW.replace(tzinfo=None), zoneinfo.ZoneInfo("UTC"), NOW)


# --- the pages ----------------------------------------------------------------------------------

def test_a_user_chooses_a_time_zone_once_and_it_is_remembered(agent_client, agent):
    html = page(agent_client.get("/account"))
    assert 'data-detect="true"' in html  # not chosen yet: the browser's zone is suggested
    assert "times are shown in UTC" in html
    options = re.findall(r'<option[^>]*value="([^"]+)"', html)
    assert options == list(times.time_zones())
    response = agent_client.post("/account", data={"time_zone": "Asia/Tokyo"})
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert db.session.get(User, agent.id).time_zone == "Asia/Tokyo"
    again = page(agent_client.get("/account"))
    assert 'data-detect' not in again and '<option value="Asia/Tokyo" selected>' in again


@pytest.mark.parametrize("choice", ["Europe/Kiev", "Mars/Olympus_Mons", ""])
def test_a_zone_not_on_the_list_is_refused_and_nothing_changes(agent_client, agent, choice):
    response = agent_client.post("/account", data={"time_zone": choice})
    assert response.status_code == 400
    assert "Choose a time zone from the list." in response.get_data(as_text=True)
    assert db.session.get(User, agent.id).time_zone is None


def test_the_account_page_is_linked_from_the_top_bar(agent_client):
    assert 'id="current-user" href="/account"' in page(agent_client.get("/"))


def _recipient_changed(ago: timedelta) -> Recipient:
    credential = create_credential("Certificate", [{"name": "Ann Lee",
                                                    "email": "ann@valley.example"}])
    recipient = credential.recipients[0]
    db.session.execute(db.update(Recipient).where(Recipient.id == recipient.id)
                       .values(updated_at=datetime.now(timezone.utc) - ago))
    db.session.commit()
    db.session.refresh(recipient)
    return recipient


def test_lists_show_relative_times_with_the_exact_time_in_the_viewers_zone(
        agent_client, agent):
    recipient = _recipient_changed(timedelta(hours=3, minutes=5))
    agent.time_zone = "America/New_York"
    db.session.commit()
    exact = times.exact(recipient.updated_at, zoneinfo.ZoneInfo("America/New_York"))
    assert exact.endswith(("EST", "EDT"))
    for path in ("/recipients", f"/credentials/{recipient.credential_id}"):
        html = page(agent_client.get(path))
        assert (f'<time datetime="{recipient.updated_at.isoformat()}" title="{exact}">'
                "3 hours ago</time>") in html, path


def test_a_timeline_reads_in_the_viewers_zone(agent_client, agent):
    recipient = _recipient_changed(timedelta(minutes=1))
    agent.time_zone = "Asia/Kolkata"
    db.session.commit()
    html = page(agent_client.get(f"/recipients/{recipient.id}"))
    timeline = html[html.index('id="timeline"'):]
    stamps = re.findall(r'<time datetime="[^"]+" title="([^"]+)">([^<]+)</time>', timeline)
    assert stamps and all(exact.endswith(" IST") and said in ("just now", "1 minute ago")
                          for exact, said in stamps)


def test_the_schedule_starts_in_the_users_zone(agent_client, agent):
    agent.time_zone = "Europe/Paris"
    db.session.commit()
    html = page(agent_client.get("/credentials/new"))
    assert "<option selected>Europe/Paris</option>" in html and "<option>UTC</option>" in html
    assert "<option>Europe/Kiev</option>" not in html

"""Times as the viewer reads them: in the time zone they chose, exact ("2026-12-02 09:30 CET")
or relative ("3 hours ago") where people scan, and the short list of zones to choose from.
Pure: no Flask."""
from __future__ import annotations

import functools
import importlib.resources
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

UTC = "UTC"
# The regions of the world's zones; names outside them (US/Eastern, Etc/GMT+5, CET, Zulu) are
# backward-compatible aliases or abstractions nobody lives in.
AREAS = frozenset({"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia",
                   "Europe", "Indian", "Pacific"})


def _zone_tab() -> str | None:
    """The tz database's zone.tab: one line per region of a country, by current names only
    (Europe/Kyiv, Asia/Kolkata; never the aliases Europe/Kiev or Asia/Calcutta)."""
    for directory in zoneinfo.TZPATH:
        path = Path(directory) / "zone.tab"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    try:  # where the system has no tz database, zoneinfo reads the tzdata package's
        return (importlib.resources.files("tzdata.zoneinfo") / "zone.tab").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return None


@functools.cache
def time_zones() -> tuple[str, ...]:
    """UTC first, then the current, canonical Area/City zones that this system can load,
    sorted (about 420 rather than the 600 names ``available_timezones`` gives)."""
    available = zoneinfo.available_timezones()
    tab = _zone_tab()
    if tab is not None:
        names = {fields[2] for line in tab.splitlines()
                 if line and not line.startswith("#") and len(fields := line.split("\t")) >= 3}
    else:
        names = {name for name in available if name.partition("/")[0] in AREAS}
    return (UTC, *sorted(names & available))


def is_zone(name: str) -> bool:
    return name in time_zones()


def zone(name: str | None) -> zoneinfo.ZoneInfo:
    """The named zone; UTC for none or a name no longer on the list."""
    return zoneinfo.ZoneInfo(name if name and is_zone(name) else UTC)


def offset_text(moment: datetime) -> str:
    """UTC+01:00, UTC−05:00, UTC+05:30 (with a real minus sign); UTC at no offset."""
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        return UTC
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes > 0 else "\u2212"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def zone_label(name: str, now: datetime) -> str:
    """How the list shows a zone: its place in words and its offset now,
    "America/New York (UTC−05:00)"."""
    if name == UTC:
        return "UTC (Coordinated Universal Time)"
    return f"{name.replace('_', ' ')} ({offset_text(now.astimezone(zoneinfo.ZoneInfo(name)))})"


def exact(moment: datetime, tz: zoneinfo.ZoneInfo) -> str:
    """The moment to the minute in ``tz``, with the zone's abbreviation when it has a lettered
    one (CET, EST), else its offset (Asia/Dubai's is "+04")."""
    local = moment.astimezone(tz)
    abbreviation = local.tzname() or ""
    suffix = abbreviation if abbreviation.isalpha() else offset_text(local)
    return f"{local:%Y-%m-%d %H:%M} {suffix}"


# Each unit with the span from which it is used (the largest that fits is chosen), rounded.
_UNITS = (("year", timedelta(days=365), timedelta(days=320)),
          ("month", timedelta(days=30.44), timedelta(days=26)),
          ("day", timedelta(days=1), timedelta(hours=22)),
          ("hour", timedelta(hours=1), timedelta(minutes=45)),
          ("minute", timedelta(minutes=1), timedelta(seconds=45)))


def relative(moment: datetime, now: datetime) -> str:
    """How long ago (or how soon) ``moment`` is from ``now``, as people say it: "just now",
    "1 minute ago", "3 hours ago", "in 2 days"."""
    delta = now - moment
    span = abs(delta)
    for unit, size, threshold in _UNITS:
        if span >= threshold:
            n = max(1, round(span / size))
            amount = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"{amount} ago" if delta > timedelta(0) else f"in {amount}"
    return "just now"


@dataclass(frozen=True)
class Stamp:
    """One moment as a page shows it: ``iso`` for ``<time datetime>``, ``exact`` in the
    viewer's zone, ``relative`` to now."""

    iso: str
    exact: str
    relative: str


def stamp(moment: datetime, tz: zoneinfo.ZoneInfo, now: datetime) -> Stamp:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times are stored in UTC, aware")
    return Stamp(moment.astimezone(timezone.utc).isoformat(), exact(moment, tz),
                 relative(moment, now))

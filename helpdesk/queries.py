"""Query builders for the lists the desk shows: recipients filtered, searched, sorted and paged;
counts per status; recipients grouped by domain; the dashboard's charts. Each count is one
GROUP BY; each page is a LIMIT/OFFSET over an indexed order, so the pages stay fast with a million
recipients. No Flask here: views turn request arguments into a ``RecipientFilter``."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Mapping

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from .causes import RESEND_CANNOT_HELP
from .models import Credential, CredentialState, DeliveryEvent, Recipient
from .status import BOUNCED, NOT_OPENED, NOT_SENT, OPENED, SENDING, STATUSES

SORTS = {
    "id": Recipient.id,
    "name": Recipient.name,
    "email": Recipient.email,
    "status": Recipient.status,
    "updated": Recipient.updated_at,
}
# Statuses in which an email reached (or tried to reach) a mail server: a bounce rate's base.
SENT_STATUSES = (SENDING, NOT_OPENED, BOUNCED, OPENED)
MAX_QUERY_LENGTH = 320
MAX_ID = 2**31 - 1  # the largest integer key: past it PostgreSQL errors instead of not finding
# Past this a list is empty anyway; it keeps OFFSET far from the database's integer limits.
MAX_PAGE = 10**7


class FilterError(ValueError):
    """A filter the user asked for that makes no sense (an unknown status, a bad page)."""


def whole_number(text: str, name: str, maximum: int) -> int:
    """``text`` as a whole number from 1 to ``maximum``. Only ASCII digits count: ``'²'.isdigit()``
    is true but ``int('²')`` fails, and a number past ``maximum`` would overflow the database."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise FilterError(f"{name} must be a whole number from 1, not {text[:40]!r}")
    if len(text) > len(str(maximum)) or int(text) > maximum:
        raise FilterError(f"{name} must be at most {maximum}")
    return int(text)


def record_id(text: str) -> int | None:
    """``text`` as a record's id when it can be one (a search for "42" also finds credential 42)."""
    try:
        return whole_number(text, "id", MAX_ID)
    except FilterError:
        return None


def whole_numbers(texts: Iterable[str]) -> set[int]:
    """The texts that are record ids or line numbers (the ticked boxes of a form), as numbers."""
    return {number for text in texts if (number := record_id(text)) is not None}


@dataclass(frozen=True)
class ListArgs:
    """The page and the search of any list, from a query string: the one parser every list
    (pages and API) reads them with."""
    page: int = 1
    q: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "ListArgs":
        """Raises FilterError with a message fit for the user."""
        page = whole_number(args.get("page") or "1", "page", MAX_PAGE)
        q = (args.get("q") or "").strip()
        if len(q) > MAX_QUERY_LENGTH:
            raise FilterError(f"q must be at most {MAX_QUERY_LENGTH} characters: the search is "
                              "too long")
        return cls(page=page, q=q)


@dataclass(frozen=True)
class RecipientFilter:
    credential_id: int | None = None
    domain: str | None = None
    status: str | None = None
    q: str = ""
    sort: str = "name"
    descending: bool = False
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str], **fixed: Any) -> "RecipientFilter":
        """Read ``status``, ``sort`` (a key of SORTS, ``-`` first for descending), ``q`` and
        ``page``. Raises FilterError with a message fit for the user."""
        status = args.get("status") or None
        if status is not None and status not in STATUSES:
            raise FilterError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
        sort = args.get("sort") or "name"
        descending = sort.startswith("-")
        if sort.lstrip("-") not in SORTS:
            raise FilterError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
        listed = ListArgs.from_args(args)
        return cls(status=status, q=listed.q, sort=sort.lstrip("-"), descending=descending,
                   page=listed.page, **fixed)

    def conditions(self, with_status: bool = True) -> list:
        where = []
        if self.credential_id is not None:
            where.append(Recipient.credential_id == self.credential_id)
        if self.domain is not None:
            where.append(Recipient.email_domain == self.domain)
        if self.q:
            where.append(search_condition(self.q))
        if with_status and self.status:
            where.append(Recipient.status == self.status)
        return where

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query-string arguments that give this filter (with some changed), for links."""
        f = replace(self, **changes)
        out: dict[str, Any] = {}
        if f.status:
            out["status"] = f.status
        if f.q:
            out["q"] = f.q
        if (f.sort, f.descending) != ("name", False):
            out["sort"] = ("-" if f.descending else "") + f.sort
        if f.page != 1:
            out["page"] = f.page
        return out


def email_prefix(prefix: str):
    """Addresses starting with ``prefix``, whatever their case. A range rather than LIKE: it
    walks the ``lower(email)`` index on SQLite too."""
    prefix = prefix.lower()
    return func.lower(Recipient.email).between(prefix, prefix + "\U0010ffff")


def search_condition(q: str):
    """Recipients found by ``q``: the address it starts, the domain it names, the credential
    whose id it is, or a name or address containing it. What looks like an address or a
    domain is looked up through the indexes alone; other text also reads every name."""
    q = q.strip()
    terms = [email_prefix(q), Recipient.email_domain == q.lower().lstrip("@")]
    if (credential_id := record_id(q)) is not None:
        terms.append(Recipient.credential_id == credential_id)
    if "@" not in q and ("." not in q or " " in q):
        terms += [Recipient.name.icontains(q, autoescape=True),
                  Recipient.email.icontains(q, autoescape=True)]
    return or_(*terms)


def status_counts(session: Session, *where) -> dict[str, int]:
    """Recipients per status (every status present, zeros included), in one GROUP BY."""
    rows = session.execute(select(Recipient.status, func.count()).where(*where)
                           .group_by(Recipient.status))
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: n for status, n in rows if status in counts})
    return counts


def cause_counts(session: Session, *where) -> dict[str, int]:
    """Recipients per cause, the causes present only, in one GROUP BY."""
    return dict(session.execute(select(Recipient.cause, func.count()).where(*where)
                                .group_by(Recipient.cause)).all())


def resend_cannot_help(session: Session, *where) -> int:
    """How many of these recipients a bulk resend skips: their cause says resending unchanged
    cannot help (``helpdesk.publishing.repeats_a_failure`` decides each one)."""
    return session.scalar(select(func.count()).where(
        *where, Recipient.cause.in_(RESEND_CANNOT_HELP))) or 0


@dataclass(frozen=True)
class Page:
    items: list
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.size + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.size + len(self.items)


def ordered(query: Select, f: RecipientFilter) -> Select:
    column = SORTS[f.sort]
    order = column.desc() if f.descending else column.asc()
    if f.sort == "email":
        # Recipients without an address go last, on SQLite as on PostgreSQL. Only here: NULLS
        # LAST keeps SQLite from walking the other columns' indexes.
        order = order.nulls_last()
    return query.order_by(order, Recipient.id.desc() if f.descending else Recipient.id.asc())


def recipient_page(session: Session, f: RecipientFilter, size: int) -> tuple[Page, dict[str, int]]:
    """One page of recipients and the counts per status of the whole (unfiltered by status)
    selection: the counts give the page's total, so there is no second COUNT."""
    counts = status_counts(session, *f.conditions(with_status=False))
    total = counts[f.status] if f.status else sum(counts.values())
    query = ordered(select(Recipient).where(*f.conditions()), f)
    items = list(session.scalars(query.limit(size).offset((f.page - 1) * size)))
    return Page(items, f.page, size, total), counts


def all_recipients(session: Session, f: RecipientFilter, chunk: int = 1000) -> Iterator[Recipient]:
    """Every recipient matching, in the filter's order, fetched in chunks (for exports)."""
    query = ordered(select(Recipient).where(*f.conditions()), f)
    yield from session.scalars(query.execution_options(yield_per=chunk))


# --- CSV --------------------------------------------------------------------------------------

CSV_HEADER = ("id", "credential_id", "name", "email", "domain", "status", "status_label",
              "cause", "cause_label", "evidence", "updated_at")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet shows as text: one that starts like a formula gets an apostrophe
    (OWASP's advice against CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(recipient: Recipient) -> list[str]:
    return [csv_safe(v) for v in (
        recipient.id, recipient.credential_id, recipient.name, recipient.email,
        recipient.email_domain, recipient.status, STATUSES[recipient.status].label,
        recipient.cause, recipient.cause_info.label, recipient.evidence,
        recipient.updated_at.isoformat() if recipient.updated_at else "")]


# --- domains ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DomainStats:
    domain: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def bounced(self) -> int:
        return self.counts[BOUNCED]

    @property
    def sent(self) -> int:
        return sum(self.counts[s] for s in SENT_STATUSES)

    @property
    def bounce_rate(self) -> float:
        """Bounced among the recipients whose email went out."""
        return self.bounced / self.sent if self.sent else 0.0


def _bounced_count():
    return func.sum(case((Recipient.status == BOUNCED, 1), else_=0))


def domain_page(session: Session, page: int, size: int, q: str = "") -> tuple[list[DomainStats], int]:
    """Domains with the most bounces first (then the most recipients), with their counts per
    status; and how many domains there are."""
    where = [Recipient.email_domain.is_not(None)]
    if q:
        where.append(Recipient.email_domain.icontains(q.strip().lstrip("@"), autoescape=True))
    total = session.scalar(select(func.count(func.distinct(Recipient.email_domain))).where(*where))
    bounced = _bounced_count()
    names = [d for (d,) in session.execute(
        select(Recipient.email_domain).where(*where).group_by(Recipient.email_domain)
        .order_by(bounced.desc(), func.count().desc(), Recipient.email_domain)
        .limit(size).offset((page - 1) * size))]
    return domain_stats(session, names), total or 0


def domain_stats(session: Session, domains: Iterable[str]) -> list[DomainStats]:
    """Counts per status for each domain named, in the order given."""
    domains = list(domains)
    by_domain = counts_per_status(session, Recipient.email_domain, domains)
    return [DomainStats(d, by_domain[d]) for d in domains]


def bounced_at_domain(session: Session, domain: str) -> int:
    return session.scalar(select(func.count()).where(
        Recipient.email_domain == domain, Recipient.status == BOUNCED)) or 0


def top_bounced_domains(session: Session, limit: int = 8) -> list[tuple[str, int]]:
    rows = session.execute(
        select(Recipient.email_domain, func.count().label("n"))
        .where(Recipient.status == BOUNCED, Recipient.email_domain.is_not(None))
        .group_by(Recipient.email_domain).order_by(func.count().desc(), Recipient.email_domain)
        .limit(limit))
    return [(d, n) for d, n in rows]


# --- the dashboard ------------------------------------------------------------------------------

def events_per_day(session: Session, today: date, days: int = 14) -> list[tuple[date, dict[str, int]]]:
    """For each of the last ``days`` days (oldest first), how many delivery events raised an
    email to each status: what happened to the emails that day."""
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=timezone.utc)
    day = func.date(DeliveryEvent.occurred_at)
    rows = session.execute(
        select(day, DeliveryEvent.level, func.count())
        .where(DeliveryEvent.occurred_at >= since, DeliveryEvent.level.is_not(None))
        .group_by(day, DeliveryEvent.level))
    found: dict[str, dict[str, int]] = {}
    for d, level, n in rows:
        found.setdefault(str(d), {})[level] = n
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({k: v for k, v in found.get(d.isoformat(), {}).items() if k in counts})
        out.append((d, counts))
    return out


def recent_problems(session: Session, limit: int = 10) -> list[Recipient]:
    """The latest bounced recipients and those whose published credential's email was not sent
    (refused by the provider, or published without email)."""
    return list(session.scalars(
        select(Recipient).join(Credential)
        .where(or_(Recipient.status == BOUNCED,
                   and_(Recipient.status == NOT_SENT,
                        Credential.state == CredentialState.published)))
        .order_by(Recipient.updated_at.desc(), Recipient.id.desc()).limit(limit)))


def credential_counts(session: Session, credential_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Counts per status for each credential, in one GROUP BY."""
    return counts_per_status(session, Recipient.credential_id, list(credential_ids))


def counts_per_status(session: Session, column, keys: list) -> dict:
    """For each key of ``column`` (a recipient's domain, credential…), its recipients' counts
    per status, every status present, in one GROUP BY."""
    out = {key: dict.fromkeys(STATUSES, 0) for key in keys}
    if keys:
        rows = session.execute(select(column, Recipient.status, func.count())
                               .where(column.in_(keys)).group_by(column, Recipient.status))
        for key, status, n in rows:
            if status in STATUSES:
                out[key][status] = n
    return out


def lookup(session: Session, q: str, limit: int = 50) -> list[Recipient]:
    """Recipients found by address, name, domain or credential id, most recently changed first."""
    return list(session.scalars(select(Recipient).where(search_condition(q))
                                .order_by(Recipient.updated_at.desc(), Recipient.id.desc())
                                .limit(limit)))

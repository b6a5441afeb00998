"""Query builders for the lists the desk shows: recipients filtered, searched, sorted and paged;
counts per status; recipients grouped by domain; the dashboard's charts. Counts come from the
tallies or one GROUP BY; a numbered page is a LIMIT/OFFSET over an indexed order, read from the
end past the middle (so the first and the last pages are seeks), and the recipients view pages
by keyset. No Flask here: views turn request arguments into a ``RecipientFilter``."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Mapping

from sqlalchemy import Select, and_, case, func, or_, select, tuple_
from sqlalchemy.orm import Session, selectinload

from .causes import RESEND_CANNOT_HELP
from .importer import csv_safe
from .models import (Credential, CredentialState, CredentialTally, Delivery, DomainTally,
                     Recipient)
from . import tallies  # noqa: F401  (the triggers keeping the tallies read here)
from .search import in_subquery, name_or_address_contains
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


def credential_number(q: str) -> int | None:
    """The credential a search names by its number, as the desk writes it ("#2") or bare."""
    return record_id(q.strip().removeprefix("#").strip())


def search_condition(q: str):
    """Recipients found by ``q``: a credential's number ("#2", or "2") finds its recipients and
    nothing else; otherwise the address it starts, the domain it names, an address it was sent
    to before (since corrected), or a name or address containing it, through the trigram index
    (``helpdesk.search``)."""
    q = q.strip()
    number = credential_number(q)
    if number is not None:
        return Recipient.credential_id == number
    terms = [email_prefix(q), Recipient.email_domain == q.lower().lstrip("@")]
    if "@" in q:
        terms.append(in_subquery(Recipient.id, select(Delivery.recipient_id).where(
            func.lower(Delivery.email) == q.lower())))
    if "@" not in q and ("." not in q or " " in q):
        terms.append(name_or_address_contains(q))
    return or_(*terms)


def status_counts(session: Session, *where) -> dict[str, int]:
    """Recipients per status (every status present, zeros included), in one GROUP BY."""
    rows = session.execute(select(Recipient.status, func.count()).where(*where)
                           .group_by(Recipient.status))
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: n for status, n in rows if status in counts})
    return counts


def tallied_counts(session: Session, credential_id: int | None = None,
                   domain: str | None = None) -> dict[str, int]:
    """Recipients per status of a credential, a domain or everyone (not both: that is
    ``status_counts``), from the tallies (``helpdesk.tallies``): as cheap at a million
    recipients as at ten."""
    if credential_id is not None and domain is not None:
        raise ValueError("a tally is per credential or per domain, not both")
    tally, where = CredentialTally, []
    if credential_id is not None:
        where = [CredentialTally.credential_id == credential_id]
    elif domain is not None:
        tally, where = DomainTally, [DomainTally.email_domain == domain]
    rows = session.execute(select(tally.status, func.sum(tally.n)).where(*where)
                           .group_by(tally.status))
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(n) for status, n in rows if status in counts})
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


def ordered(query: Select, f: RecipientFilter, reverse: bool = False) -> Select:
    """The filter's order (``reverse``: the same rows backwards, the last one first)."""
    column = SORTS[f.sort]
    descending = f.descending != reverse
    order = column.desc() if descending else column.asc()
    if f.sort == "email":
        # Recipients without an address go last, on SQLite as on PostgreSQL. Only here: NULLS
        # LAST keeps SQLite from walking the other columns' indexes.
        order = order.nulls_first() if reverse else order.nulls_last()
    return query.order_by(order, Recipient.id.desc() if descending else Recipient.id.asc())


def recipient_page(session: Session, f: RecipientFilter, size: int) -> tuple[Page, dict[str, int]]:
    """One page of recipients and the counts per status of the whole (unfiltered by status)
    selection: the counts give the page's total, so there is no second COUNT. Without a
    search, and unless both a credential and a domain are given, the counts are tallied."""
    if not f.q and (f.credential_id is None or f.domain is None):
        counts = tallied_counts(session, f.credential_id, f.domain)
    else:
        counts = status_counts(session, *f.conditions(with_status=False))
    total = counts[f.status] if f.status else sum(counts.values())
    query, start = select(Recipient).where(*f.conditions()), (f.page - 1) * size
    end = min(start + size, total)
    if start > total // 2 and end > start:
        # Past the middle, counted from the end: the last page reads its own rows backwards
        # rather than an OFFSET over every row before it.
        items = list(session.scalars(ordered(query, f, reverse=True)
                                     .limit(end - start).offset(total - end)))[::-1]
    else:
        items = list(session.scalars(ordered(query, f).limit(size).offset(start)))
    return Page(items, f.page, size, total), counts


def all_recipients(session: Session, f: RecipientFilter, chunk: int = 1000) -> Iterator[Recipient]:
    """Every recipient matching, in the filter's order, fetched in chunks (for exports)."""
    query = ordered(select(Recipient).where(*f.conditions()), f)
    yield from session.scalars(query.execution_options(yield_per=chunk))


# --- CSV --------------------------------------------------------------------------------------

CSV_HEADER = ("id", "credential_id", "name", "email", "domain", "status", "status_label",
              "cause", "cause_label", "evidence", "updated_at")


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


def _tally_sums(where=()):
    """Per domain: its bounced recipients and all of them, from the domain tally."""
    bounced = func.sum(case((DomainTally.status == BOUNCED, DomainTally.n), else_=0))
    total = func.sum(DomainTally.n)
    return (select(DomainTally.email_domain, bounced.label("bounced"), total.label("total"))
            .where(*where).group_by(DomainTally.email_domain).having(total > 0)), bounced, total


def domain_page(session: Session, page: int, size: int, q: str = "") -> tuple[list[DomainStats], int]:
    """Domains with the most bounces first (then the most recipients), with their counts per
    status; and how many domains there are. From the domain tally: it reads a row or so per
    domain, however many recipients each has."""
    where = []
    if q:
        where.append(DomainTally.email_domain.icontains(q.strip().lstrip("@"), autoescape=True))
    sums, bounced, total = _tally_sums(where)
    count = session.scalar(select(func.count()).select_from(sums.subquery()))
    names = [d for d, _, _ in session.execute(
        sums.order_by(bounced.desc(), total.desc(), DomainTally.email_domain)
        .limit(size).offset((page - 1) * size))]
    return domain_stats(session, names), count or 0


def domain_stats(session: Session, domains: Iterable[str]) -> list[DomainStats]:
    """Counts per status for each domain named, in the order given."""
    domains = list(domains)
    by_domain = _tallied_per_status(session, DomainTally.email_domain, domains)
    return [DomainStats(d, by_domain[d]) for d in domains]


def bounced_at_domain(session: Session, domain: str) -> int:
    return tallied_counts(session, domain=domain)[BOUNCED]


def top_bounced_domains(session: Session, limit: int = 8) -> list[tuple[str, int]]:
    bounced = func.sum(DomainTally.n)
    rows = session.execute(
        select(DomainTally.email_domain, bounced).where(DomainTally.status == BOUNCED)
        .group_by(DomainTally.email_domain).having(bounced > 0)
        .order_by(bounced.desc(), DomainTally.email_domain).limit(limit))
    return [(d, int(n)) for d, n in rows]


# --- the dashboard ------------------------------------------------------------------------------

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
    """Counts per status for each credential, from the credential tally."""
    return _tallied_per_status(session, CredentialTally.credential_id, list(credential_ids))


def _tallied_per_status(session: Session, column, keys: list) -> dict:
    """For each key of a tally's ``column`` (a domain, a credential), its recipients' counts
    per status, every status present, in one GROUP BY of the tally."""
    out = {key: dict.fromkeys(STATUSES, 0) for key in keys}
    if keys:
        tally = column.class_
        rows = session.execute(select(column, tally.status, func.sum(tally.n))
                               .where(column.in_(keys)).group_by(column, tally.status))
        for key, status, n in rows:
            if status in STATUSES:
                out[key][status] = int(n)
    return out


def lookup(session: Session, q: str, limit: int = 50) -> list[Recipient]:
    """Recipients found by address, name, domain or credential id, most recently changed first,
    with their credentials (each result names its own: one query, not one per row)."""
    return list(session.scalars(select(Recipient).where(search_condition(q))
                                .order_by(SEARCHED_BY_CHANGE.desc(), Recipient.id.desc())
                                .limit(limit).options(selectinload(Recipient.credential))))


# --- the recipients view across credentials -------------------------------------------------------

# Its sortable columns; "reason" is the cause. Each is NOT NULL, so (column, id) is a keyset.
VIEW_SORTS = {
    "updated": Recipient.updated_at,
    "name": Recipient.name,
    "status": Recipient.status,
    "reason": Recipient.cause,
}


# The last change, to order a search's matches by: the same value as the column, but not the
# column itself, so that PostgreSQL finds the matches through the search's indexes and sorts
# them, rather than walking ix_recipient_updated and filtering every row until it has a page
# (which its guess of a LIKE's selectivity makes look cheap: seconds for a rare name).
SEARCHED_BY_CHANGE = func.coalesce(Recipient.updated_at, Recipient.updated_at)


@dataclass(frozen=True)
class RecipientView:
    """The recipients view's filters, order and place: keyset pagination (``after`` is the
    last row's sort value and id), so a deep page costs what the first one does."""

    status: str | None = None
    cause: str | None = None
    domain: str | None = None
    credential_id: int | None = None
    since: date | None = None
    until: date | None = None  # inclusive
    q: str = ""
    sort: str = "updated"
    descending: bool = True
    after: tuple[str, int] | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str], causes: Iterable[str]) -> "RecipientView":
        """Read the query string; raises FilterError with a message fit for the user."""
        status = args.get("status") or None
        if status is not None and status not in STATUSES:
            raise FilterError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
        cause = args.get("cause") or None
        if cause is not None and cause not in set(causes):
            raise FilterError(f"unknown cause {cause!r}")
        sort = args.get("sort") or "-updated"
        if sort.lstrip("-") not in VIEW_SORTS:
            raise FilterError(f"unknown sort {sort!r}: use one of {', '.join(VIEW_SORTS)}")
        credential = args.get("credential") or ""
        if credential and credential_number(credential) is None:
            raise FilterError(f"credential must be a credential number, not {credential!r}")
        q = (args.get("q") or "").strip()
        if len(q) > MAX_QUERY_LENGTH:
            raise FilterError(f"the search is too long (at most {MAX_QUERY_LENGTH} characters)")
        return cls(status=status, cause=cause,
                   domain=(args.get("domain") or "").strip().lower().lstrip("@") or None,
                   credential_id=credential_number(credential) if credential else None,
                   since=_day(args, "since"), until=_day(args, "until"), q=q,
                   sort=sort.lstrip("-"), descending=sort.startswith("-"),
                   after=_cursor(args.get("after")))

    def conditions(self, with_status: bool = True) -> list:
        where = []
        if with_status and self.status:
            where.append(Recipient.status == self.status)
        if self.cause:
            where.append(Recipient.cause == self.cause)
        if self.domain:
            where.append(Recipient.email_domain == self.domain)
        if self.credential_id is not None:
            where.append(Recipient.credential_id == self.credential_id)
        if self.since:
            where.append(Recipient.updated_at >= _midnight(self.since))
        if self.until:
            where.append(Recipient.updated_at < _midnight(self.until + timedelta(days=1)))
        if self.q:
            where.append(search_condition(self.q))
        return where

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query string for this view (with some changes), for links; a new filter or
        order starts from the first page."""
        f = replace(self, **changes)
        out: dict[str, Any] = {key: value for key, value in (
            ("status", f.status), ("cause", f.cause), ("domain", f.domain),
            ("credential", f.credential_id), ("q", f.q),
            ("since", f.since and f.since.isoformat()), ("until", f.until and f.until.isoformat()))
            if value}
        if (f.sort, f.descending) != ("updated", True):
            out["sort"] = ("-" if f.descending else "") + f.sort
        if f.after:
            out["after"] = f"{f.after[0]}~{f.after[1]}"
        return out

    def ordered(self, query: Select) -> Select:
        column = SEARCHED_BY_CHANGE if self.q and self.sort == "updated" else VIEW_SORTS[self.sort]
        if self.after is not None:
            # A row value, not "column < v OR (column = v AND id < i)": both databases seek an
            # index ending in (column, id) to it, where the OR reads every row before it.
            key, after = tuple_(column, Recipient.id), (_sort_value(self.sort, self.after[0]),
                                                        self.after[1])
            query = query.where(key < after if self.descending else key > after)
        if self.descending:
            return query.order_by(column.desc(), Recipient.id.desc())
        return query.order_by(column.asc(), Recipient.id.asc())

    def cursor_of(self, recipient: Recipient) -> tuple[str, int]:
        value = getattr(recipient, VIEW_SORTS[self.sort].key)
        return (value.isoformat() if isinstance(value, datetime) else str(value), recipient.id)


def _day(args: Mapping[str, str], name: str) -> date | None:
    text = (args.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{name} must be a date like 2026-12-01, not {text!r}") from None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)


def _cursor(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    value, _, last_id = text.rpartition("~")
    if not last_id.isdigit():
        raise FilterError("after must be the position a page link gives")
    return value, int(last_id)


def _sort_value(sort: str, text: str):
    if sort == "updated":
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise FilterError("after must be the position a page link gives") from None
    return text


@dataclass(frozen=True)
class KeysetPage:
    items: list
    next_after: tuple[str, int] | None  # where the next page starts, if there is one


def view_page(session: Session, view: RecipientView, size: int) -> KeysetPage:
    """One page of the view: ``size`` + 1 rows read, so the next page is known without a
    count."""
    rows = list(session.scalars(view.ordered(select(Recipient).where(*view.conditions()))
                                .limit(size + 1)))
    items = rows[:size]
    return KeysetPage(items, view.cursor_of(items[-1]) if len(rows) > size else None)


def view_counts(session: Session, view: RecipientView) -> dict[str, int]:
    """The view's counts per status (whatever its status filter): tallied when it narrows to
    no more than a credential or a domain."""
    narrowed = replace(view, status=None, sort="updated", descending=True, after=None)
    if narrowed in (RecipientView(), RecipientView(domain=view.domain),
                    RecipientView(credential_id=view.credential_id)):
        return tallied_counts(session, view.credential_id, view.domain)
    return status_counts(session, *view.conditions(with_status=False))


def view_recipients(session: Session, view: RecipientView,
                    chunk: int = 1000) -> Iterator[Recipient]:
    """Every recipient of the view (all pages), in its order: for export and bulk actions."""
    query = replace(view, after=None).ordered(select(Recipient).where(*view.conditions()))
    yield from session.scalars(query.execution_options(yield_per=chunk))

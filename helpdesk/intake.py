"""One intake for new recipients, whichever way they come (the form, a CSV file, the API): every
row gets one verdict, all of them are shown at once, and a list with likely typos, malformed
addresses or repeated ones is reviewed before anything is created or sent.

Pure: no Flask, no database session. The limits come from the model's columns.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Collection, Iterable, Mapping

from .models import Credential, CredentialState, Recipient
from .validation import check_email

MAX_TITLE = Credential.title.type.length
MAX_NAME = Recipient.name.type.length
MAX_EMAIL = Recipient.email.type.length
STATES = tuple(state.value for state in CredentialState)

# The verdicts, in the order a review lists them.
UNREADABLE = "unreadable"  # the row itself cannot be read (the reason says why): not created
TYPO = "typo"  # the address looks mistyped: the reviewer picks the suggestion or keeps it
INVALID = "invalid"  # not a usable address: kept, flagged and never sent to
DUPLICATE = "duplicate"  # an address an earlier row (or the credential) has: not created
NOT_PROVIDED = "not_provided"  # no address: kept, nothing is sent
ACCEPTED = "accepted"
EMPTY = "empty"  # a CSV row with nothing in it: skipped
VERDICTS = {
    UNREADABLE: "cannot be read",
    TYPO: "likely typo to review",
    INVALID: "not a usable address (kept, never emailed)",
    DUPLICATE: "duplicate (not added again)",
    NOT_PROVIDED: "kept without an address",
    ACCEPTED: "accepted",
    EMPTY: "empty (skipped)",
}
TO_REVIEW = (UNREADABLE, TYPO, INVALID, DUPLICATE)
CREATED = (TYPO, INVALID, NOT_PROVIDED, ACCEPTED)


@dataclass(frozen=True)
class Entry:
    """One recipient as given: its line (or position) in the input, name and address."""

    line: int
    name: str
    email: str | None


@dataclass(frozen=True)
class Verdict:
    line: int
    kind: str
    name: str = ""
    email: str | None = None  # normalised when usable, else as given
    reason: str | None = None
    suggestion: str | None = None
    cells: tuple[str, ...] = ()  # a CSV row's own cells, for the download of rows left out

    @property
    def words(self) -> str:
        return VERDICTS[self.kind]


def unreadable(line: int, reason: str, cells: tuple[str, ...] = ()) -> Verdict:
    return Verdict(line, UNREADABLE, reason=reason, cells=cells)


def by_line(number: int) -> str:
    """How a form's or a file's reviews name an entry: by its line."""
    return f"line {number}"


def judge(entries: Iterable[Entry | Verdict], known_domains: Collection[str] = (),
          existing: Collection[str] = (), place: Callable[[int], str] = by_line,
          unknown_domains: Collection[str] = ()) -> list[Verdict]:
    """A verdict for each entry (a Verdict given instead, e.g. an unreadable row, is kept).
    ``existing``: lower-cased addresses the credential already has; ``place`` names an entry
    in the reasons, in the terms of the input it came from; ``unknown_domains``: domains that
    bounced as not existing (``helpdesk.validation.check_email``)."""
    known, unknown = frozenset(known_domains), frozenset(unknown_domains)
    first_line_of: dict[str, int] = {}
    verdicts = []
    for entry in entries:
        if isinstance(entry, Verdict):
            verdicts.append(entry)
            continue
        verdict = _judge_one(entry, known, unknown)
        if verdict.email and verdict.kind != UNREADABLE:
            key = verdict.email.lower()
            if key in existing:
                verdict = replace(verdict, kind=DUPLICATE,
                                  reason="already a recipient of this credential")
            elif key in first_line_of:
                verdict = replace(verdict, kind=DUPLICATE,
                                  reason=f"the same address as {place(first_line_of[key])}")
            else:
                first_line_of[key] = entry.line
        verdicts.append(verdict)
    return verdicts


def _judge_one(entry: Entry, known: frozenset[str], unknown: frozenset[str]) -> Verdict:
    name, address = (entry.name or "").strip(), (entry.email or "").strip()
    if "\0" in name or "\0" in address:
        return Verdict(entry.line, UNREADABLE, name,
                       reason="it contains a NUL character, which cannot be stored")
    if len(name) > MAX_NAME:
        return Verdict(entry.line, UNREADABLE, reason=f"the name is longer than {MAX_NAME} "
                                                      "characters")
    if len(address) > MAX_EMAIL:
        return Verdict(entry.line, UNREADABLE, name, reason=f"the address is longer than "
                                                           f"{MAX_EMAIL} characters")
    if not address:
        return Verdict(entry.line, NOT_PROVIDED, name)
    check = check_email(address, known_domains=known, unknown_domains=unknown)
    if not check.valid:
        return Verdict(entry.line, INVALID, name, address, reason=check.error,
                       suggestion=check.suggestion)
    if check.suggestion:
        return Verdict(entry.line, TYPO, name, check.normalized,
                       reason=f"did you mean {check.suggestion}?", suggestion=check.suggestion)
    return Verdict(entry.line, ACCEPTED, name, check.normalized)


def needs_review(verdicts: Iterable[Verdict]) -> bool:
    return any(v.kind in TO_REVIEW for v in verdicts)


def apply_choices(verdicts: Iterable[Verdict], use_suggestion: Collection[int],
                  known_domains: Collection[str] = (), existing: Collection[str] = (),
                  place: Callable[[int], str] = by_line,
                  unknown_domains: Collection[str] = ()) -> list[Verdict]:
    """The verdicts once the reviewer chose: the typos on the lines in ``use_suggestion`` take
    their suggestion (an invalid address with one too), the others stay as given; judged again,
    so that a suggestion repeating another row is a duplicate. Typos kept as given are accepted."""
    chosen = []
    for v in verdicts:
        if v.kind in (UNREADABLE, EMPTY):
            chosen.append(v)
        elif v.kind in (TYPO, INVALID) and v.suggestion and v.line in use_suggestion:
            chosen.append(Entry(v.line, v.name, v.suggestion))
        else:
            chosen.append(Entry(v.line, v.name, v.email))
    kept_as_typed = {v.line for v in verdicts if v.kind == TYPO and v.line not in use_suggestion}
    return [replace(v, kind=ACCEPTED, reason=None, suggestion=None)
            if v.kind == TYPO and v.line in kept_as_typed else v
            for v in judge(chosen, known_domains, existing, place, unknown_domains)]


def to_create(verdicts: Iterable[Verdict]) -> list[dict]:
    """The recipients to create, as ``create_credential`` takes them."""
    return [{"name": v.name, "email": v.email} for v in verdicts if v.kind in CREATED]


def counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    found = {kind: 0 for kind in VERDICTS}
    for v in verdicts:
        found[v.kind] += 1
    return found


def summary(verdicts: Iterable[Verdict]) -> str:
    """One sentence with every row accounted for: "5 rows: 3 accepted, 1 likely typo …"."""
    found = counts(verdicts)
    total = sum(found.values())
    parts = [f"{n} {VERDICTS[kind]}" for kind, n in found.items() if n]
    return f"{total} row{'s' if total != 1 else ''}" + (": " + ", ".join(parts) if parts else "")


def entries_from(items: Iterable[Mapping]) -> list[Entry]:
    """API recipients (``{"name", "email"}``) as entries numbered from 0, their index."""
    return [Entry(index, str(item.get("name") or ""), item.get("email"))
            for index, item in enumerate(items)]

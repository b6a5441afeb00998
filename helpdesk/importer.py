"""Importing recipients from a CSV file: columns name and email, found by their header.

Reading is pure (``read_rows``: decode, find the delimiter and the columns, judge every row);
writing (``import_rows``) adds the rows that can be imported to a credential, all or nothing.
Every row is accounted for: imported, imported with a typo warning, refused with its line and
reason, or skipped as empty. A file that cannot be read as a whole (not UTF-8, no usable header,
a quote never closed) raises ``BrokenFile`` and nothing is imported.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .validation import check_email

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 100_000
MAX_NAME_LENGTH = 300  # the Recipient.name column
DELIMITERS = (",", ";")
PROGRESS_EVERY = 500  # rows between two progress reports

# What a row becomes.
IMPORTED = "imported"
WARNED = "imported with a typo warning"
REFUSED = "refused"
SKIPPED = "skipped"

# Header names, compared without case, accents, spaces or punctuation ("E-mail address").
_EMAIL_HEADER = re.compile(
    r"(recipient|contact|work|primary|your)?(e?mail)(address|addr)?|courriel|correo(electronico)?"
    r"|adressee?mail|emailadresse")
_NAME_HEADER = re.compile(
    r"(recipient|full|display|contact|student|participant|learner|holder|your)?names?"
    r"|nom(complet)?|nombre(completo)?")
_FIRST_NAME_HEADER = re.compile(r"(first|given|fore)names?|prenom|vorname")
_LAST_NAME_HEADER = re.compile(r"(last|family|sur)names?|nomdefamille|apellidos?|nachname")

ProgressCallback = Callable[[int, int], None]  # (done, total)


class BrokenFile(ValueError):
    """The file cannot be imported at all; the message says where and why."""


@dataclass(frozen=True)
class Row:
    """One record of the file and what importing does with it."""

    line: int  # where the record starts in the file, counting from 1
    cells: tuple[str, ...]
    outcome: str
    name: str = ""
    email: str | None = None  # normalised
    reason: str | None = None  # why it is refused or skipped, or the typo warning
    suggestion: str | None = None


@dataclass(frozen=True)
class ParsedFile:
    delimiter: str
    header: tuple[str, ...]
    rows: tuple[Row, ...]

    def count(self, *outcomes: str) -> int:
        return sum(1 for row in self.rows if row.outcome in outcomes)


@dataclass(frozen=True)
class ImportSummary:
    credential_id: int
    header: tuple[str, ...]
    rows: tuple[Row, ...]
    queued: int = 0  # deliveries queued for the new recipients

    def count(self, *outcomes: str) -> int:
        return sum(1 for row in self.rows if row.outcome in outcomes)

    @property
    def imported(self) -> int:
        return self.count(IMPORTED, WARNED)

    def rows_with(self, *outcomes: str) -> list[Row]:
        return [row for row in self.rows if row.outcome in outcomes]

    def describe(self) -> str:
        """One sentence for people: what was imported, refused and skipped."""
        parts = [f"{self.imported} imported"]
        if self.count(WARNED):
            parts[0] += f" ({self.count(WARNED)} with a typo warning)"
        parts.append(f"{self.count(REFUSED)} refused")
        parts.append(f"{self.count(SKIPPED)} empty skipped")
        sentence = ", ".join(parts) + f" of {len(self.rows)} rows."
        if self.queued:
            sentence += f" {self.queued} emails queued."
        return sentence


# --- reading ---------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """The file's text: UTF-8, with or without a byte order mark."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BrokenFile("the file is UTF-16, not UTF-8: save it as \"CSV UTF-8\" and try again")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise BrokenFile(f"line {line}: not UTF-8 (byte 0x{data[error.start]:02X}): save the "
                         "file as \"CSV UTF-8\" and try again") from None


def _header_key(cell: str) -> str:
    """``"  E-mail Address "`` → ``"emailaddress"``; accents dropped (Prénom → prenom)."""
    text = unicodedata.normalize("NFKD", cell.casefold())
    return "".join(c for c in text if c.isascii() and c.isalpha())


@dataclass(frozen=True)
class _Columns:
    email: int
    name: int | None  # a full-name column, or
    first_last: tuple[int | None, int | None]  # first and last name columns

    @property
    def needed(self) -> int:
        """How many cells a row must have to reach every column used."""
        used = [self.email, self.name, *self.first_last]
        return max(i for i in used if i is not None) + 1

    def name_of(self, cells: Sequence[str]) -> str:
        if self.name is not None:
            return _cell(cells, self.name).strip()
        return " ".join(part for part in (_cell(cells, i).strip() for i in self.first_last)
                        if part)


def _cell(cells: Sequence[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


def _find_column(header: Sequence[str], line: int, pattern: re.Pattern, what: str) -> int | None:
    found = [i for i, cell in enumerate(header) if pattern.fullmatch(_header_key(cell))]
    if len(found) > 1:
        names = " and ".join(f"column {i + 1} ({header[i].strip()!r})" for i in found)
        raise BrokenFile(f"line {line}: ambiguous header: {names} both look like the {what} "
                         "column; rename or remove one")
    return found[0] if found else None


def _columns(header: Sequence[str], line: int) -> _Columns:
    email = _find_column(header, line, _EMAIL_HEADER, "email")
    name = _find_column(header, line, _NAME_HEADER, "name")
    first = _find_column(header, line, _FIRST_NAME_HEADER, "first name")
    last = _find_column(header, line, _LAST_NAME_HEADER, "last name")
    shown = ", ".join(repr(cell.strip()) for cell in header)
    for missing, what in ((email is None, "email"),
                          (name is None and first is None and last is None, "name")):
        if missing:
            raise BrokenFile(f"line {line}: no {what} column in the header (found {shown}); "
                             "the first row must name the columns, e.g. Name,Email")
    return _Columns(email=email, name=name, first_last=(first, last))


def _records(text: str, delimiter: str) -> Iterable[tuple[int, list[str]]]:
    """(line where the record starts, cells), raising BrokenFile where the csv module finds the
    structure broken (a quote never closed, text after a closing quote)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                raise BrokenFile(f"line {start}: a quote opened here is never closed") from None
            raise BrokenFile(f"line {reader.line_num}: {error}") from None
        yield start, cells
        start = reader.line_num + 1


def _is_blank(cells: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def _sniff(text: str) -> tuple[str, int, list[str], _Columns]:
    """The delimiter that makes the first non-empty record a usable header, with that header's
    line, cells and columns."""
    failures = []
    for delimiter in sorted(DELIMITERS, key=lambda d: -_first_line(text).count(d)):
        try:
            line, header = next(((n, c) for n, c in _records(text, delimiter) if not _is_blank(c)),
                                (0, []))
            if not header:
                raise BrokenFile("the file has no rows")
            return delimiter, line, header, _columns(header, line)
        except BrokenFile as error:
            failures.append(error)
    raise failures[0]  # the reading with the likelier delimiter explains best


def _first_line(text: str) -> str:
    return next((line for line in io.StringIO(text, newline="") if line.strip()), "")


def _line_count(text: str) -> int:
    """Lines as the csv module counts them: ended by LF, CR or CR LF."""
    return text.count("\n") + text.count("\r") - text.count("\r\n") + 1


def read_rows(data: bytes, known_domains: Iterable[str] = (),
              progress: ProgressCallback | None = None) -> ParsedFile:
    """Read a CSV file and judge each row; raises BrokenFile when the file as a whole cannot be
    imported. ``known_domains`` are real domains for the typo check; ``progress`` is called now
    and then with (lines done, lines in all)."""
    if len(data) > MAX_FILE_BYTES:
        raise BrokenFile(f"the file is {len(data) / 1024 / 1024:.1f} MB; the limit is "
                         f"{MAX_FILE_BYTES // 1024 // 1024} MB: split it")
    text = decode(data)
    delimiter, header_line, header, columns = _sniff(text)
    known = frozenset(known_domains)
    total_lines = _line_count(text)
    rows: list[Row] = []
    first_line_of: dict[str, int] = {}  # address (lower case) → the line that has it
    for line, cells in _records(text, delimiter):
        if line == header_line:
            continue
        if len(rows) >= MAX_ROWS:
            raise BrokenFile(f"line {line}: the file has more than {MAX_ROWS:,} rows: split it")
        row = _judge(line, cells, len(header), columns, known, first_line_of)
        rows.append(row)
        if row.outcome in (IMPORTED, WARNED):
            first_line_of[row.email.lower()] = line
        if progress and len(rows) % PROGRESS_EVERY == 0:
            progress(line, total_lines)
    if progress:
        progress(total_lines, total_lines)
    return ParsedFile(delimiter=delimiter, header=tuple(header), rows=tuple(rows))


def _judge(line: int, cells: list[str], header_size: int, columns: _Columns,
           known: frozenset[str], first_line_of: dict[str, int]) -> Row:
    def refused(reason: str, **extra) -> Row:
        return Row(line, tuple(cells), REFUSED, reason=reason, **extra)

    if _is_blank(cells):
        return Row(line, tuple(cells), SKIPPED, reason="empty row")
    if len(cells) > header_size and not _is_blank(cells[header_size:]):
        return refused(f"{_cells(len(cells))} but the header has {header_size}: a comma or "
                       "semicolon inside a name needs quotes around the name")
    if len(cells) < columns.needed:
        return refused(f"{_cells(len(cells))} but the header has {header_size}: missing column")
    name, address = columns.name_of(cells), cells[columns.email].strip()
    if "\0" in name or "\0" in address:
        return refused("contains a NUL character, which cannot be stored")
    if len(name) > MAX_NAME_LENGTH:
        return refused(f"the name is longer than {MAX_NAME_LENGTH} characters", name=name)
    if not address:
        return refused("no email address", name=name)
    check = check_email(address, known_domains=known)
    if not check.valid:
        reason = f"invalid address: {check.error}"
        if check.suggestion:
            reason += f" Did you mean {check.suggestion}?"
        return refused(reason, name=name, suggestion=check.suggestion)
    earlier = first_line_of.get(check.normalized.lower())
    if earlier is not None:
        return refused(f"duplicate of line {earlier}", name=name, email=check.normalized)
    if check.suggestion:
        return Row(line, tuple(cells), WARNED, name=name, email=check.normalized,
                   reason=f"did you mean {check.suggestion}?", suggestion=check.suggestion)
    return Row(line, tuple(cells), IMPORTED, name=name, email=check.normalized)


def _cells(count: int) -> str:
    return "1 cell" if count == 1 else f"{count} cells"


# --- the refused rows, to fix and import again -------------------------------------------------

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (=HYPERLINK(...))."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def refused_rows_csv(header: Sequence[str], rows: Iterable[Row]) -> str:
    """The refused rows as CSV: line, reason, then the row's own cells under its own header."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([formula_safe(c) for c in ("line", "reason", *header)])
    for row in rows:
        if row.outcome == REFUSED:
            writer.writerow([str(row.line), *(formula_safe(c) for c in (row.reason or "",
                                                                        *row.cells))])
    return out.getvalue()


# --- writing ---------------------------------------------------------------------------------

def import_rows(credential, parsed: ParsedFile,
                progress: ProgressCallback | None = None) -> ImportSummary:
    """Add the importable rows to ``credential`` in one transaction, all or nothing.

    A row whose address the credential already has is refused. When the credential is published
    and sends email, the new recipients' emails are queued in the same transaction.
    """
    # The database side, imported here so that reading a file needs no app.
    from sqlalchemy import func, select

    from . import ingest, publishing
    from .models import Recipient, db
    from .addresses import set_email

    existing = set(db.session.scalars(
        select(func.lower(Recipient.email)).where(Recipient.credential_id == credential.id,
                                                  Recipient.email.is_not(None))))
    rows: list[Row] = []
    created: list[Recipient] = []
    try:
        for done, row in enumerate(parsed.rows, 1):
            if row.outcome in (IMPORTED, WARNED):
                row = _add(credential.id, row, existing, created, Recipient, set_email)
            rows.append(row)
            if progress and (done % PROGRESS_EVERY == 0 or done == len(parsed.rows)):
                progress(done, len(parsed.rows))
        db.session.add_all(created)
        db.session.flush()
        queued = 0
        if created and credential.published and credential.send_email:
            # Commits the recipients with their deliveries; an unknown provider raises first.
            queued = len(publishing.queue_deliveries(created))
        else:
            ingest.refresh_and_commit([r.id for r in created])
    except BaseException:
        db.session.rollback()
        raise
    return ImportSummary(credential_id=credential.id, header=parsed.header, rows=tuple(rows),
                         queued=queued)


def _add(credential_id: int, row: Row, existing: set[str], created: list, recipient_class,
         set_email) -> Row:
    """Create the row's recipient unless the credential has its address; the row as imported
    or refused."""
    key = row.email.lower()
    if key in existing:
        return _refuse(row, "already a recipient of this credential")
    recipient = recipient_class(credential_id=credential_id, name=row.name)
    set_email(recipient, row.email)
    if recipient.email_error:  # e.g. the deliverability check found no mail server
        return _refuse(row, f"invalid address: {recipient.email_error}")
    existing.add(key)
    created.append(recipient)
    return row


def _refuse(row: Row, reason: str) -> Row:
    return Row(row.line, row.cells, REFUSED, name=row.name, email=row.email, reason=reason)

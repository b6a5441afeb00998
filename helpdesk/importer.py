"""Importing recipients from a CSV file: columns name and email, found by their header.

Reading is pure (``read_rows``: decode, find the delimiter and the columns, give every row its
``intake`` verdict, the same the form and the API give); writing (``import_rows``) adds the rows
the review kept to a credential, all or nothing. A row that cannot be read (a stray quote, too
many cells) is named with its line and the reason, and the rest of the file is still read. Only
a file that cannot be read as a whole (not UTF-8, no usable header, too large) raises
``BrokenFile``.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from . import intake
from .bidi import without_controls
from .intake import EMPTY, UNREADABLE, Entry, Verdict

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 100_000
DELIMITERS = (",", ";")
PROGRESS_EVERY = 500  # rows between two progress reports
# A quoted cell may hold line breaks; one still open after this many lines is a stray quote.
MAX_RECORD_LINES = 20

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
class ParsedFile:
    delimiter: str
    header: tuple[str, ...]
    rows: tuple[Verdict, ...]


@dataclass(frozen=True)
class ImportSummary:
    credential_id: int
    header: tuple[str, ...]
    rows: tuple[Verdict, ...]
    queued: int = 0  # deliveries queued for the new recipients
    run_id: int | None = None  # the ``ImportRun`` that keeps it

    @property
    def counts(self) -> dict[str, int]:
        return intake.counts(self.rows)

    @property
    def imported(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind in intake.CREATED)

    def rows_with(self, *kinds: str) -> list[Verdict]:
        return [row for row in self.rows if row.kind in kinds]

    def describe(self) -> str:
        """One sentence for people: every row accounted for, and the emails queued."""
        sentence = f"{self.imported} imported of {intake.summary(self.rows)}."
        if self.queued:
            sentence += f" {self.queued} email{'s' if self.queued != 1 else ''} queued."
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


_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _records(text: str, delimiter: str,
             width: int | None = None) -> Iterable[tuple[int, list[str] | str]]:
    """(line where the record starts, its cells, or why it cannot be read). A record the csv
    module finds broken (a stray quote) is reported and reading goes on at the next line; a
    quoted cell spanning lines is taken only when its record has ``width`` cells."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:  # the usual, well-formed file, read in one pass
        records, start = [], 1
        for cells in reader:
            records.append((start, cells))
            start = reader.line_num + 1
        yield from records
        return
    except csv.Error:
        pass
    lines = _PHYSICAL_LINE.findall(text)
    index = 0
    while index < len(lines):
        cells, used = _record_at(lines, index, delimiter, width)
        yield index + 1, cells
        index += used


def _record_at(lines: list[str], index: int, delimiter: str,
               width: int | None) -> tuple[list[str] | str, int]:
    """The record starting at ``lines[index]`` and how many lines it takes; a broken one is
    its reason, taking its own line only."""
    for end in range(index + 1, min(index + MAX_RECORD_LINES, len(lines)) + 1):
        try:
            found = list(csv.reader(io.StringIO("".join(lines[index:end]), newline=""),
                                    delimiter=delimiter, strict=True))
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                continue  # a quoted cell with a line break, or a quote never closed
            if end == index + 1:
                return ("a quote in the middle of a cell: put the whole cell in quotes and "
                        "double the quote inside it (\"Ann \"\"Nan\"\" Lee\")"), 1
            break
        cells = found[0] if found else []
        if end == index + 1 or width is None or len(cells) == width:
            return cells, end - index
        break
    return "a quote opens a cell here and never closes: remove it or close it", 1


def _is_blank(cells: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def _sniff(text: str) -> tuple[str, int, list[str], _Columns]:
    """The delimiter that makes the first non-empty record a usable header, with that header's
    line, cells and columns."""
    failures = []
    for delimiter in sorted(DELIMITERS, key=lambda d: -_first_line(text).count(d)):
        try:
            line, header = next(((n, c) for n, c in _records(text, delimiter)
                                 if isinstance(c, str) or not _is_blank(c)), (0, []))
            if isinstance(header, str):
                raise BrokenFile(f"line {line}: the header cannot be read: {header}")
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
              progress: ProgressCallback | None = None,
              unknown_domains: Iterable[str] = ()) -> ParsedFile:
    """Read a CSV file and give each row its verdict; raises BrokenFile when the file as a whole
    cannot be imported. ``known_domains`` are real domains for the typo check, and
    ``unknown_domains`` ones that bounced as not existing; ``progress`` is called now and then
    with (lines done, lines in all)."""
    if len(data) > MAX_FILE_BYTES:
        raise BrokenFile(f"the file is {len(data) / 1024 / 1024:.1f} MB; the limit is "
                         f"{MAX_FILE_BYTES // 1024 // 1024} MB: split it")
    text = decode(data)
    delimiter, header_line, header, columns = _sniff(text)
    total_lines = _line_count(text)
    rows: list[Entry | Verdict] = []
    cells_of: dict[int, tuple[str, ...]] = {}
    for line, cells in _records(text, delimiter, len(header)):
        if line == header_line:
            continue
        if len(rows) >= MAX_ROWS:
            raise BrokenFile(f"line {line}: the file has more than {MAX_ROWS:,} rows: split it")
        rows.append(_row(line, cells, len(header), columns))
        cells_of[line] = tuple(cells) if isinstance(cells, list) else ()
        if progress and len(rows) % PROGRESS_EVERY == 0:
            progress(line, total_lines)
    if progress:
        progress(total_lines, total_lines)
    verdicts = [replace(v, cells=cells_of.get(v.line, ()))
                for v in intake.judge(rows, frozenset(known_domains),
                                      unknown_domains=frozenset(unknown_domains))]
    return ParsedFile(delimiter=delimiter, header=tuple(header), rows=tuple(verdicts))


def _row(line: int, cells: list[str] | str, header_size: int,
         columns: _Columns) -> Entry | Verdict:
    """The row as an entry to judge, or the verdict of a row that cannot be judged."""
    if isinstance(cells, str):
        return intake.unreadable(line, cells)
    if _is_blank(cells):
        return Verdict(line, EMPTY, reason="empty row")
    if len(cells) > header_size and not _is_blank(cells[header_size:]):
        return intake.unreadable(line, f"{_cells(len(cells))} but the header has "
                                       f"{header_size}: a comma or semicolon inside a name "
                                       "needs quotes around the name")
    if len(cells) < columns.needed:
        return intake.unreadable(line, f"{_cells(len(cells))} but the header has "
                                       f"{header_size}: missing column")
    return Entry(line, columns.name_of(cells), cells[columns.email].strip() or None)


def _cells(count: int) -> str:
    return "1 cell" if count == 1 else f"{count} cells"


# --- the refused rows, to fix and import again -------------------------------------------------

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """A cell a spreadsheet shows as text: one that starts like a formula gets an apostrophe
    (OWASP's advice against CSV injection), and bidi controls are taken out (a spreadsheet
    isolates nothing: a name's override would reorder the cell)."""
    text = without_controls(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


LEFT_OUT = (UNREADABLE, intake.DUPLICATE)


def left_out_csv(header: Sequence[str], rows: Iterable[Verdict]) -> str:
    """The rows not imported (unreadable, duplicates) as CSV: line, reason, then the row's own
    cells under its own header, to fix and import again."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_safe(c) for c in ("line", "reason", *header)])
    for row in rows:
        if row.kind in LEFT_OUT:
            writer.writerow([str(row.line), *(csv_safe(c) for c in (row.reason or "",
                                                                        *row.cells))])
    return out.getvalue()


def rows_data(header: Sequence[str], rows: Iterable[Verdict]) -> dict:
    """A file's header and rows' verdicts as plain JSON data (the review sends them back; an
    import run keeps them)."""
    return {"header": list(header), "rows": [
        [r.line, r.kind, r.name, r.email, r.reason, r.suggestion, list(r.cells)] for r in rows]}


def parsed_from_data(data) -> ParsedFile:
    """``rows_data`` read back; ValueError when it is not of that shape."""
    try:
        header = tuple(str(cell) for cell in data["header"])
        rows = []
        for line, kind, name, email, reason, suggestion, cells in data["rows"]:
            if kind not in intake.VERDICTS:
                raise ValueError(kind)
            rows.append(Verdict(
                int(line), kind, str(name or ""), None if email is None else str(email),
                None if reason is None else str(reason),
                None if suggestion is None else str(suggestion), tuple(str(c) for c in cells)))
    except (TypeError, KeyError) as error:
        raise ValueError(f"not an import's rows: {error}") from None
    return ParsedFile(",", header, tuple(rows))


# --- writing ---------------------------------------------------------------------------------

def import_rows(credential, parsed: ParsedFile, use_suggestion: Collection[int] = (),
                known_domains: Collection[str] = (),
                progress: ProgressCallback | None = None, key: str | None = None,
                unknown_domains: Collection[str] = ()) -> ImportSummary:
    """Add the rows the review kept to ``credential`` in one transaction, all or nothing: the
    typos on the lines in ``use_suggestion`` take their suggestion, the others stay as given.

    A row whose address the credential already has is a duplicate. When the credential is
    published and sends email, the new recipients' emails are queued in the same transaction,
    and so is the ``ImportRun`` that keeps the summary (``key``, when given, is unique: a second
    import under it fails whole with an IntegrityError).
    """
    # The database side, imported here so that reading a file needs no app.
    from sqlalchemy import func, select

    from . import audit, ingest, publishing
    from .addresses import set_email
    from .models import ImportRun, Recipient, db

    existing = set(db.session.scalars(
        select(func.lower(Recipient.email)).where(Recipient.credential_id == credential.id,
                                                  Recipient.email.is_not(None))))
    cells_of = {row.line: row.cells for row in parsed.rows}
    rows = tuple(replace(v, cells=cells_of.get(v.line, ())) for v in intake.apply_choices(
        parsed.rows, frozenset(use_suggestion), known_domains, existing,
        unknown_domains=unknown_domains))
    try:
        created = []
        for done, item in enumerate(intake.to_create(rows), 1):
            recipient = Recipient(credential_id=credential.id, name=item["name"])
            set_email(recipient, item["email"])
            created.append(recipient)
            if progress and (done % PROGRESS_EVERY == 0):
                progress(done, len(rows))
        if progress:
            progress(len(rows), len(rows))
        db.session.add_all(created)
        db.session.flush()
        audit.record_credential("imported", credential, f"{len(created)} recipient"
                                f"{'s' if len(created) != 1 else ''} from a CSV file")
        sendable = ([r for r in created if publishing.sendable(r)]
                    if created and credential.published and credential.send_email else [])
        run = ImportRun(key=key, credential_id=credential.id, created_by=audit.current_actor(),
                        rows=rows_data(parsed.header, rows), queued=len(sendable))
        db.session.add(run)
        if sendable:
            # Commits the recipients with their deliveries; an unknown provider raises first.
            publishing.queue_deliveries(sendable)
        else:
            ingest.refresh_and_commit([r.id for r in created])
    except BaseException:
        db.session.rollback()
        raise
    return ImportSummary(credential_id=credential.id, header=parsed.header, rows=rows,
                         queued=run.queued, run_id=run.id)

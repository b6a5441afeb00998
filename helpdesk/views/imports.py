"""Importing recipients from an uploaded CSV file: the rows' verdicts, the review of the
likely typos and other questions before anything is created or sent, the import, and the
download of the rows left out."""
from __future__ import annotations

import json

from flask import (Blueprint, Response, abort, current_app, make_response, render_template,
                   request)
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from .. import audit, importer, intake, queries, untrusted_json
from ..addresses import known_domains
from ..auth import csrf
from ..models import Credential, db

bp = Blueprint("imports", __name__)

# Room for the multipart framing and the CSRF field around a file of the largest size.
UPLOAD_LIMIT = importer.MAX_FILE_BYTES + 64 * 1024
# The rows travel back with the review's answer and the download request (any web process can
# serve them): at most every row of the largest file, with reasons and JSON quoting.
ROWS_LIMIT = 4 * importer.MAX_FILE_BYTES
SHOWN_ROWS = 200  # per kind of verdict on a page; the download has them all
TOO_LARGE = f"The file is larger than {importer.MAX_FILE_BYTES // 1024 // 1024} MB: split it."
NEW = "new"  # the credential choice that creates one


def _accept_large_form(limit: int) -> None:
    """Raise the app's request size limit for this request, then check the CSRF token (these
    views are exempt from the automatic check, which reads the form before a view can)."""
    request.max_content_length = limit
    request.max_form_memory_size = limit
    if current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect()


@bp.route("/import", methods=["GET", "POST"])
@csrf.exempt
def index():
    """Import into a credential chosen on the form, or into a new one."""
    return _import(None)


@bp.route("/credentials/<int:credential_id>/import", methods=["GET", "POST"])
@csrf.exempt
def upload(credential_id: int):
    return _import(db.get_or_404(Credential, credential_id))


def _form(credential: Credential | None, error: str | None = None, code: int = 200,
          values=None):
    credentials = [] if credential else db.session.scalars(
        select(Credential).order_by(Credential.id.desc())).all()
    limits = {"megabytes": importer.MAX_FILE_BYTES // 1024 // 1024, "rows": importer.MAX_ROWS}
    return render_template("import.html", credential=credential, credentials=credentials,
                           error=error, limits=limits, values=values or {},
                           max_title=intake.MAX_TITLE), code


def _target(credential: Credential | None) -> Credential | str:
    """The credential chosen on the form, or the title of a new one; aborts with the form
    when neither is usable."""
    if credential is not None:
        return credential
    chosen = request.form.get("credential", "")
    if chosen == NEW:
        title = " ".join(request.form.get("title", "").split())
        if not title or len(title) > intake.MAX_TITLE:
            abort(make_response(_form(None, "Give the new credential a title of at most "
                                            f"{intake.MAX_TITLE} characters.", 400,
                                      request.form)))
        return title
    found = db.session.get(Credential, chosen_id) if (chosen_id := queries.record_id(chosen)) \
        else None
    if found is None:
        abort(make_response(_form(None, "Choose the credential to import the recipients "
                                        "into, or a new one.", 400, request.form)))
    return found


def _import(credential: Credential | None):
    if request.method == "GET":
        return _form(credential)
    if (request.content_length or 0) > UPLOAD_LIMIT:
        return _form(credential, TOO_LARGE, 413)
    try:
        _accept_large_form(UPLOAD_LIMIT)
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        return _form(credential, TOO_LARGE, 413)
    target = _target(credential)
    if upload is None or not upload.filename:
        return _form(credential, "Choose a CSV file to import.", 400)
    try:
        parsed = importer.read_rows(upload.read(importer.MAX_FILE_BYTES + 1), known_domains())
    except importer.BrokenFile as error:
        return _form(credential, f"Nothing was imported: {error}.", 400)
    if intake.needs_review(parsed.rows):
        return _review(target, parsed)
    return _write(target, parsed, ())


def _rows_json(header, rows) -> str:
    return json.dumps({"header": list(header), "rows": [
        [r.line, r.kind, r.name, r.email, r.reason, r.suggestion, list(r.cells)] for r in rows]},
        ensure_ascii=False)


def _rows_from_form(text: str) -> importer.ParsedFile:
    try:
        data = untrusted_json.loads(text)
        header = tuple(str(cell) for cell in data["header"])
        rows = []
        for line, kind, name, email, reason, suggestion, cells in data["rows"]:
            if kind not in intake.VERDICTS:
                raise ValueError(kind)
            rows.append(intake.Verdict(
                int(line), kind, str(name or ""), None if email is None else str(email),
                None if reason is None else str(reason),
                None if suggestion is None else str(suggestion), tuple(str(c) for c in cells)))
    except (ValueError, TypeError, KeyError):
        abort(400, "The rows were not sent back as the review page gives them; upload the "
                   "file again.")
    return importer.ParsedFile(",", header, tuple(rows))


def _review(target: Credential | str, parsed: importer.ParsedFile):
    """Every verdict at once, and the questions (which suggestions to take) before importing."""
    return render_template(
        "import_review.html", credential=target if isinstance(target, Credential) else None,
        new_title=target if isinstance(target, str) else None, parsed=parsed,
        counts=intake.counts(parsed.rows), summary=intake.summary(parsed.rows),
        intake=intake, shown=SHOWN_ROWS, rows_json=_rows_json(parsed.header, parsed.rows))


@bp.route("/import/confirm", methods=["POST"])
@csrf.exempt
def confirm():
    """The review's answer: import the rows it showed, with the suggestions it took."""
    _accept_large_form(ROWS_LIMIT)
    chosen = request.form.get("credential", "")
    chosen_id = queries.record_id(chosen)
    target = _target(db.session.get(Credential, chosen_id) if chosen_id else None)
    use = queries.whole_numbers(request.form.getlist("use_suggestion"))
    return _write(target, _rows_from_form(request.form.get("rows", "")), use)


def _write(target: Credential | str, parsed: importer.ParsedFile, use_suggestion):
    if isinstance(target, str):  # created in the import's transaction: nothing is left half made
        target = Credential(title=target)
        db.session.add(target)
        db.session.flush()
        audit.record_credential("created", target, "to import a CSV file into")
    summary = importer.import_rows(target, parsed, use_suggestion, known_domains())
    left_out = summary.rows_with(*importer.LEFT_OUT)
    return render_template(
        "import_summary.html", credential=target, summary=summary, intake=intake,
        shown=SHOWN_ROWS, left_out=left_out,
        left_out_json=_rows_json(summary.header, left_out))


@bp.route("/credentials/<int:credential_id>/import/refused.csv", methods=["POST"])
@csrf.exempt
def refused_rows(credential_id: int):
    """The rows left out that the summary page sent back, as a CSV file safe to open in a
    spreadsheet."""
    db.get_or_404(Credential, credential_id)
    _accept_large_form(ROWS_LIMIT)
    parsed = _rows_from_form(request.form.get("refused", ""))
    body = "\ufeff" + importer.left_out_csv(parsed.header, parsed.rows)  # the BOM: Excel reads UTF-8
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=credential-{credential_id}-refused.csv"})

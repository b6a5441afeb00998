"""Importing recipients from an uploaded CSV file: the rows' verdicts, the review of the
likely typos and other questions before anything is created or sent, the import, its summary
(a page of its own, after a redirect: reloading it imports nothing) and the download of the rows
left out."""
from __future__ import annotations

import hashlib
import json
import secrets

from flask import (Blueprint, Response, abort, current_app, flash, make_response, redirect,
                   render_template, request, url_for)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from .. import audit, importer, intake, queries, untrusted_json
from ..addresses import domain_history
from ..auth import csrf
from ..models import Credential, ImportRun, db

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
                           max_title=intake.MAX_TITLE, form_key=secrets.token_urlsafe(16)), code


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
    data = upload.read(importer.MAX_FILE_BYTES + 1)
    try:
        known, unknown = domain_history()
        parsed = importer.read_rows(data, known, unknown_domains=unknown)
    except importer.BrokenFile as error:
        return _form(credential, f"Nothing was imported: {error}.", 400)
    # The form's key and the file name this import: the same form sent again with the same
    # file (a reload, a double click) imports once; another file from it is another import.
    key = _import_key(hashlib.sha256(data).hexdigest())
    if intake.needs_review(parsed.rows):
        return _review(target, parsed, key)
    return _write(target, parsed, (), key)


def _import_key(content: str) -> str | None:
    form_key = request.form.get("form_key", "")
    if not form_key:
        return None
    return hashlib.sha256(f"{form_key}\n{content}".encode()).hexdigest()


def _rows_json(header, rows) -> str:
    return json.dumps(importer.rows_data(header, rows), ensure_ascii=False)


def _rows_from_form(text: str) -> importer.ParsedFile:
    try:
        return importer.parsed_from_data(untrusted_json.loads(text))
    except ValueError:
        abort(400, "The rows were not sent back as the review page gives them; upload the "
                   "file again.")


def _review(target: Credential | str, parsed: importer.ParsedFile, key: str | None):
    """Every verdict at once, and the questions (which suggestions to take) before importing."""
    return render_template(
        "import_review.html", credential=target if isinstance(target, Credential) else None,
        new_title=target if isinstance(target, str) else None, parsed=parsed,
        counts=intake.counts(parsed.rows), summary=intake.summary(parsed.rows),
        intake=intake, shown=SHOWN_ROWS, rows_json=_rows_json(parsed.header, parsed.rows),
        import_key=key or "")


@bp.route("/import/confirm", methods=["POST"])
@csrf.exempt
def confirm():
    """The review's answer: import the rows it showed, with the suggestions it took."""
    _accept_large_form(ROWS_LIMIT)
    chosen = request.form.get("credential", "")
    chosen_id = queries.record_id(chosen)
    target = _target(db.session.get(Credential, chosen_id) if chosen_id else None)
    use = queries.whole_numbers(request.form.getlist("use_suggestion"))
    key = request.form.get("import_key", "")[:64] or None
    return _write(target, _rows_from_form(request.form.get("rows", "")), use, key)


def _already_imported(key: str | None) -> ImportRun | None:
    return db.session.scalar(select(ImportRun).where(ImportRun.key == key)) if key else None


def _to_summary(run: ImportRun, again: bool = False):
    if again:
        flash("This file was already imported: here is what it did. Nothing was imported "
              "twice.", "info")
    return redirect(url_for("imports.summary", run_id=run.id), 303)


def _write(target: Credential | str, parsed: importer.ParsedFile, use_suggestion,
           key: str | None):
    if (done := _already_imported(key)) is not None:
        return _to_summary(done, again=True)
    if isinstance(target, str):  # created in the import's transaction: nothing is left half made
        target = Credential(title=target)
        db.session.add(target)
        db.session.flush()
        audit.record_credential("created", target, "to import a CSV file into")
    try:
        known, unknown = domain_history()
        summary = importer.import_rows(target, parsed, use_suggestion, known, key=key,
                                       unknown_domains=unknown)
    except IntegrityError:
        # The same form was imported at the same moment by another request: that one counts.
        db.session.rollback()
        if (done := _already_imported(key)) is None:
            raise
        return _to_summary(done, again=True)
    return redirect(url_for("imports.summary", run_id=summary.run_id), 303)


def _run_summary(run: ImportRun) -> importer.ImportSummary:
    parsed = importer.parsed_from_data(run.rows)
    return importer.ImportSummary(run.credential_id, parsed.header, parsed.rows, run.queued,
                                  run.id)


@bp.route("/imports/<int:run_id>")
def summary(run_id: int):
    """What an import did, every row accounted for."""
    run = db.get_or_404(ImportRun, run_id)
    result = _run_summary(run)
    return render_template(
        "import_summary.html", credential=db.session.get(Credential, run.credential_id),
        run=run, summary=result, intake=intake, shown=SHOWN_ROWS,
        left_out=result.rows_with(*importer.LEFT_OUT))


@bp.route("/imports/<int:run_id>/left-out.csv")
def left_out_rows(run_id: int):
    """The rows an import left out, as a CSV file safe to open in a spreadsheet."""
    result = _run_summary(db.get_or_404(ImportRun, run_id))
    body = "\ufeff" + importer.left_out_csv(result.header, result.rows)  # the BOM: Excel reads UTF-8
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=import-{run_id}-left-out.csv"})

"""Importing recipients from an uploaded CSV file, and downloading the rows it refused."""
from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, render_template, request
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from .. import importer
from ..auth import csrf
from ..models import Credential, db
from ..addresses import known_domains

bp = Blueprint("imports", __name__)

# Room for the multipart framing and the CSRF field around a file of the largest size.
UPLOAD_LIMIT = importer.MAX_FILE_BYTES + 64 * 1024
# The refused rows travel back with the download request (any web process can serve it): at
# most every row of the largest file, with reasons and JSON quoting.
REFUSED_LIMIT = 4 * importer.MAX_FILE_BYTES
SHOWN_ROWS = 200  # per kind of outcome on the summary page; the download has them all
TOO_LARGE = f"The file is larger than {importer.MAX_FILE_BYTES // 1024 // 1024} MB: split it."


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
    """Import into a credential chosen on the form."""
    return _import(None)


@bp.route("/credentials/<int:credential_id>/import", methods=["GET", "POST"])
@csrf.exempt
def upload(credential_id: int):
    return _import(db.get_or_404(Credential, credential_id))


def _form(credential: Credential | None, error: str | None = None, code: int = 200):
    credentials = [] if credential else db.session.scalars(
        select(Credential).order_by(Credential.id.desc())).all()
    limits = {"megabytes": importer.MAX_FILE_BYTES // 1024 // 1024, "rows": importer.MAX_ROWS}
    return render_template("import.html", credential=credential, credentials=credentials,
                           error=error, limits=limits), code


def _import(credential: Credential | None):
    if request.method == "GET":
        return _form(credential)
    if (request.content_length or 0) > UPLOAD_LIMIT:
        return _form(credential, TOO_LARGE, 413)
    try:
        _accept_large_form(UPLOAD_LIMIT)
        upload = request.files.get("file")
        chosen = request.form.get("credential", type=int)
    except RequestEntityTooLarge:
        return _form(credential, TOO_LARGE, 413)
    if credential is None:
        credential = db.session.get(Credential, chosen) if chosen else None
        if credential is None:
            return _form(None, "Choose the credential to import the recipients into.", 400)
    if upload is None or not upload.filename:
        return _form(credential, "Choose a CSV file to import.", 400)
    try:
        parsed = importer.read_rows(upload.read(importer.MAX_FILE_BYTES + 1), known_domains())
        summary = importer.import_rows(credential, parsed)
    except importer.BrokenFile as error:
        return _form(credential, f"Nothing was imported: {error}.", 400)
    refused = [[row.line, row.reason, list(row.cells)]
               for row in summary.rows_with(importer.REFUSED)]
    return render_template(
        "import_summary.html", credential=credential, summary=summary, outcomes=importer,
        shown=SHOWN_ROWS, refused_json=json.dumps({"header": summary.header, "rows": refused},
                                                  ensure_ascii=False))


@bp.route("/credentials/<int:credential_id>/import/refused.csv", methods=["POST"])
@csrf.exempt
def refused_rows(credential_id: int):
    """The refused rows the summary page sent back, as a CSV file safe to open in a
    spreadsheet."""
    db.get_or_404(Credential, credential_id)
    _accept_large_form(REFUSED_LIMIT)
    header, rows = _refused_from_form(request.form.get("refused", ""))
    body = "\ufeff" + importer.refused_rows_csv(header, rows)  # the BOM tells Excel it is UTF-8
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=credential-{credential_id}-refused.csv"})


def _refused_from_form(text: str) -> tuple[list[str], list[importer.Row]]:
    try:
        data = json.loads(text)
        header = [str(cell) for cell in data["header"]]
        rows = [importer.Row(line=int(line), cells=tuple(str(c) for c in cells),
                             outcome=importer.REFUSED, reason=str(reason))
                for line, reason, cells in data["rows"]]
    except (ValueError, TypeError, KeyError):
        abort(400, "The refused rows were not sent back as the summary page gives them; "
                   "import the file again to get them.")
    return header, rows

"""The desk's pages: dashboard, credentials, recipients, lookup, and the embedded sink's outbox.

Regions that change while someone watches (counts, statuses, timelines) are rendered by one
function for the page and for its ``…/live`` fragment, which ``static/helpdesk.js`` polls."""
from __future__ import annotations

import csv
import hashlib
import io
from typing import Iterable

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template,
                   request, stream_with_context, url_for)
from markupsafe import Markup
from sqlalchemy import func, select

from .. import audit, credentials as changes, plugins, publishing, queries
from ..bidi import isolated, sentence
from ..charts import axis_ticks
from ..contract import capabilities
from ..addresses import check_address
from ..models import Credential, Delivery, Recipient, db
from ..status import BOUNCED, NOT_OPENED, NOT_SENT, STATUSES

bp = Blueprint("pages", __name__)

# Bulk resends offered on a credential's list: a status whose emails can usefully go again.
RESENDABLE = (NOT_SENT, BOUNCED, NOT_OPENED)
RECENT_PROBLEMS = 10


def live_region(region_id: str, url: str, template: str, announce: str = "",
                interval_ms: int = 4000, **context) -> Markup:
    """A region the browser refreshes by polling ``url``; its version is a digest of its HTML,
    so the script swaps it only when something in it changed."""
    inner = render_template(template, **context)
    return Markup(render_template(
        "_live.html", region_id=region_id, url=url, inner=Markup(inner), announce=announce,
        version=hashlib.sha256(inner.encode()).hexdigest()[:16], interval_ms=interval_ms))


def recipient_filter(**fixed) -> queries.RecipientFilter:
    """The list's filter from the query string; a bad one is a 400 (helpdesk.views.errors)."""
    return queries.RecipientFilter.from_args(request.args, **fixed)


# --- dashboard ----------------------------------------------------------------------------------

def _dashboard_region() -> Markup:
    session = db.session
    counts = queries.tallied_counts(session)
    top_domains = queries.top_bounced_domains(session)
    return live_region(
        "dashboard-live", url_for("pages.dashboard_live"), "_dashboard_live.html",
        counts=counts, ticks=axis_ticks(max(counts.values())),
        top_domains=top_domains, domain_max=max([n for _, n in top_domains] + [1]),
        problems=queries.recent_problems(session, RECENT_PROBLEMS))


@bp.route("/")
def dashboard():
    return render_template("dashboard.html", live=_dashboard_region())


@bp.route("/live/dashboard")
def dashboard_live():
    return _dashboard_region()


# --- credentials --------------------------------------------------------------------------------

@bp.route("/credentials")
def credentials():
    listed = queries.ListArgs.from_args(request.args)
    page, q, size = listed.page, listed.q, current_app.config["PAGE_SIZE"]
    where = [Credential.title.icontains(q, autoescape=True)] if q else []
    total = db.session.scalar(select(func.count()).select_from(Credential).where(*where))
    rows = db.session.scalars(select(Credential).where(*where).order_by(Credential.id.desc())
                              .limit(size).offset((page - 1) * size)).all()
    return render_template(
        "credentials.html", page=queries.Page(rows, page, size, total), q=q,
        counts=queries.credential_counts(db.session, [c.id for c in rows]))


def _credential_region(cred: Credential, f: queries.RecipientFilter) -> Markup:
    page, counts = queries.recipient_page(db.session, f, current_app.config["PAGE_SIZE"])
    hopeless = (queries.resend_cannot_help(db.session, Recipient.credential_id == cred.id,
                                           Recipient.status == f.status)
                if f.status in RESENDABLE else 0)
    return live_region(
        "credential-live", url_for("pages.credential_live", credential_id=cred.id, **f.args()),
        "_credential_live.html", interval_ms=5000, credential=cred, page=page, counts=counts,
        f=f, resendable=RESENDABLE, hopeless=hopeless)


@bp.route("/credentials/<int:credential_id>")
def credential(credential_id: int):
    cred = db.get_or_404(Credential, credential_id)
    f = recipient_filter(credential_id=cred.id)
    return render_template("credential.html", credential=cred, f=f,
                           live=_credential_region(cred, f))


@bp.route("/credentials/<int:credential_id>/live")
def credential_live(credential_id: int):
    cred = db.get_or_404(Credential, credential_id)
    return _credential_region(cred, recipient_filter(credential_id=cred.id))


def csv_download(recipients: Iterable[Recipient], name: str) -> Response:
    """Recipients as a CSV download, streamed in 64 KiB pieces however many there are."""

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(queries.CSV_HEADER)
        for recipient in recipients:
            writer.writerow(queries.csv_row(recipient))
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/credentials/<int:credential_id>/export.csv")
def export_csv(credential_id: int):
    cred = db.get_or_404(Credential, credential_id)
    f = recipient_filter(credential_id=cred.id)
    return csv_download(queries.all_recipients(db.session, f),
                        f"credential-{cred.id}-{f.status or 'all'}.csv")


def _confirm(heading: str, lines: list[str], button: str, cancel: str, danger: bool = False,
             fields: dict[str, str] | None = None):
    """A page that asks before a change that cannot be undone; its form posts back here, with
    ``fields`` as hidden inputs."""
    return render_template("confirm.html", heading=heading, lines=lines, button=button,
                           cancel=cancel, danger=danger, fields=fields)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@bp.route("/credentials/<int:credential_id>/publish", methods=["GET", "POST"])
def publish(credential_id: int):
    """Publishing asks first (GET), saying how many emails go out; the POST publishes."""
    cred = db.get_or_404(Credential, credential_id)
    back = url_for("pages.credential", credential_id=cred.id)
    if cred.published:
        flash("This credential is already published.", "info")
        return redirect(back, 303)
    if request.method == "GET":
        usable = db.session.scalar(select(func.count(Recipient.id)).where(
            Recipient.credential_id == cred.id, Recipient.email.is_not(None),
            Recipient.email_error.is_(None)))
        total = len(cred.recipients)
        lines = [sentence(f"“{{}}” has {_plural(total, 'recipient')}.", cred.title)]
        if cred.send_email:
            lines.append(f"Publishing it emails {_plural(usable, 'recipient')} at once"
                         + (f"; {total - usable} without a usable address get nothing."
                            if usable < total else "."))
            button = f"Publish and send {_plural(usable, 'email')}"
        else:
            lines.append("It is published without email: nobody is emailed.")
            button = "Publish without email"
        return _confirm(sentence("Publish “{}”?", cred.title), lines, button, back)
    queued = publishing.publish(cred)
    flash(sentence(f"Published “{{}}”; {_plural(queued, 'email')} queued.", cred.title)
          if cred.send_email else sentence("Published “{}” without email.", cred.title),
          "success")
    return redirect(back, 303)


@bp.route("/credentials/<int:credential_id>/delete", methods=["GET", "POST"])
def delete_credential(credential_id: int):
    cred = db.get_or_404(Credential, credential_id)
    if request.method == "GET":
        total = len(cred.recipients)
        return _confirm(
            sentence("Delete “{}”?", cred.title),
            [f"This deletes the credential, its {_plural(total, 'recipient')} and their "
             "delivery history. It cannot be undone; the audit log keeps a record of it."],
            "Delete the credential", url_for("pages.credential", credential_id=cred.id),
            danger=True)
    title = cred.title
    changes.delete_credential(cred)
    flash(sentence("Deleted “{}”.", title), "success")
    return redirect(url_for("pages.credentials"), 303)


@bp.route("/credentials/<int:credential_id>/resend", methods=["POST"])
def resend_status(credential_id: int):
    cred = db.get_or_404(Credential, credential_id)
    status = request.form.get("status", "")
    if status not in RESENDABLE:
        abort(400, f"only recipients in {', '.join(RESENDABLE)} can be sent again in bulk, "
                   f"not {status!r}")
    label = STATUSES[status].label
    if not cred.published:
        flash(sentence("Not sent: {}.", publishing.NotPublished(cred)), "error")
        return redirect(url_for("pages.credential", credential_id=cred.id, status=status), 303)
    result = publishing.resend_in_status(cred.id, status,
                                         include_all=request.form.get("include_all") == "on")
    flash_bulk_resend(result, f"{_plural(result.queued, 'recipient')} who showed “{label}”",
                      f"No recipient showing “{label}” has a usable address")
    return redirect(url_for("pages.credential", credential_id=cred.id, status=status), 303)


# --- recipients ---------------------------------------------------------------------------------

def _recipient_region(rec: Recipient, typed_email: str | None = None) -> Markup:
    cfg = current_app.config
    suggestion = rec.typo_suggestion or (check_address(rec.email).suggestion if rec.email
                                         else None)
    bounced_here = (queries.bounced_at_domain(db.session, rec.email_domain)
                    if rec.email_domain else 0)
    last_sent = db.session.scalar(select(func.max(Delivery.created_at))
                                  .where(Delivery.recipient_id == rec.id))
    return live_region(
        "recipient-live", url_for("pages.recipient_live", recipient_id=rec.id),
        "_recipient_live.html", announce=f"Status: {STATUSES[rec.status].label}",
        interval_ms=3000, recipient=rec, suggestion=suggestion, typed_email=typed_email,
        bounced_here=bounced_here, alert_threshold=int(cfg["DOMAIN_BOUNCE_ALERT"]),
        can_unsuppress=capabilities(plugins.provider(cfg["PROVIDER"])).suppression_list,
        sender=cfg["SENDER"], last_sent=last_sent,
        history=audit.for_recipient(db.session, rec))


@bp.route("/recipients/<int:recipient_id>")
def recipient(recipient_id: int):
    rec = db.get_or_404(Recipient, recipient_id)
    return render_template("recipient.html", recipient=rec, live=_recipient_region(rec))


@bp.route("/recipients/<int:recipient_id>/live")
def recipient_live(recipient_id: int):
    return _recipient_region(db.get_or_404(Recipient, recipient_id))


@bp.route("/recipients/<int:recipient_id>/resend", methods=["POST"])
def resend(recipient_id: int):
    """Send (again): to a corrected address (``email``), now, or as a nudge (``kind=nudge``)."""
    rec = db.get_or_404(Recipient, recipient_id)
    kind = request.form.get("kind", "resend")
    if kind not in ("resend", "nudge"):
        abort(400, f"kind must be resend or nudge, not {kind!r}")
    email = (request.form.get("email") or "").strip() or None
    try:
        delivery = publishing.resend(rec, email, kind=kind,
                                     confirmed=request.form.get("confirm") == "yes")
    except publishing.NeedsConfirmation as question:
        db.session.rollback()  # a question, not an error: nothing was changed
        return _confirm(sentence("Send to {} anyway?", rec.email),
                        [f"{question}.", "Unless that changed, it fails again or reaches someone "
                         "who did not want it, and each such send costs the sender's standing "
                         "with mail servers."],
                        "Send anyway", url_for("pages.recipient", recipient_id=rec.id),
                        danger=True, fields={"kind": kind, "confirm": "yes"})
    except ValueError as error:
        db.session.rollback()
        flash(sentence("Not sent: {}.", error), "error")
        return render_template("recipient.html", recipient=rec,
                               live=_recipient_region(rec, typed_email=email)), 400
    flash(sentence(SENT_MESSAGE[delivery.kind] + " {}.", rec.email), "success")
    return redirect(url_for("pages.recipient", recipient_id=rec.id), 303)


SENT_MESSAGE = {"send": "Sending to", "resend": "Sending again to", "nudge": "Nudged"}


@bp.route("/recipients/<int:recipient_id>/unsuppress", methods=["POST"])
def unsuppress(recipient_id: int):
    """Remove the address from the email service's suppression list, and send again."""
    rec = db.get_or_404(Recipient, recipient_id)
    try:
        publishing.unsuppress_and_resend(rec)
    except ValueError as error:
        db.session.rollback()
        flash(sentence("Not sent: {}.", error), "error")
        return render_template("recipient.html", recipient=rec,
                               live=_recipient_region(rec)), 400
    flash(sentence("Removed {} from the suppression list; sending again.", rec.email),
          "success")
    return redirect(url_for("pages.recipient", recipient_id=rec.id), 303)


def flash_bulk_resend(result: publishing.BulkResend, sent_to: str | Markup,
                      none_usable: str | Markup) -> None:
    """Say what a bulk resend did, and whom it skipped and why (``sent_to`` and
    ``none_usable`` are ours, or Markup whose outside values are isolated already)."""
    if result.queued:
        flash(Markup("Sending again to {}.").format(sent_to), "success")
    elif not result.skipped:
        flash(Markup("{}: nothing was sent.").format(none_usable), "info")
    if result.skipped:
        n = sum(result.skipped.values())
        flash(f"Skipped {_plural(n, 'recipient')} whom resending unchanged cannot help "
              f"({result.skipped_text()}): fix each one, or tick “include them” to send "
              "anyway.", "info")


def _edit_form(rec: Recipient, code: int = 200, error: str | None = None,
               suggestion: str | None = None):
    form = request.form
    values = ({"name": form.get("name", ""), "email": form.get("email", ""),
               "send": form.get("send") == "on"} if request.method == "POST" else
              {"name": rec.name, "email": rec.email or "", "send": True})
    return render_template("recipient_edit.html", recipient=rec, values=values, error=error,
                           suggestion=suggestion,
                           can_send=rec.credential.published and rec.credential.send_email), code


@bp.route("/recipients/<int:recipient_id>/edit", methods=["GET", "POST"])
def edit_recipient(recipient_id: int):
    """Change the name and address in any status; a likely typo is asked about first
    (``checked_email`` is the address the user chose to keep); then, if asked, send."""
    rec = db.get_or_404(Recipient, recipient_id)
    if request.method == "GET":
        return _edit_form(rec)
    email = request.form.get("email", "").strip()
    suggestion = check_address(email).suggestion if email else None
    if suggestion and request.form.get("checked_email") != email:
        return _edit_form(rec, suggestion=suggestion)  # a question, not an error
    try:
        changed = changes.edit_recipient(rec, request.form.get("name", ""), email)
    except ValueError as error:
        db.session.rollback()
        return _edit_form(rec, 400, error=f"Nothing was changed: {error}.")
    message = (Markup("Saved: {}.").format(Markup("; ").join(map(isolated, changed)))
               if changed else Markup("Nothing changed."))
    if request.form.get("send") == "on" and rec.credential.published:
        try:
            delivery = publishing.resend(rec)
        except ValueError as error:
            db.session.rollback()
            flash(message + " " + sentence("Not sent: {}.", error), "error")
        else:
            flash(message + " " + sentence(SENT_MESSAGE[delivery.kind] + " {}.", rec.email),
                  "success")
    else:
        flash(message, "success")
    return redirect(url_for("pages.recipient", recipient_id=rec.id), 303)


@bp.route("/recipients/<int:recipient_id>/delete", methods=["GET", "POST"])
def delete_recipient(recipient_id: int):
    rec = db.get_or_404(Recipient, recipient_id)
    back = url_for("pages.credential", credential_id=rec.credential_id)
    if request.method == "GET":
        return _confirm(
            sentence("Delete {}?", audit.describe(rec)),
            [sentence("This removes the recipient from “{}” with its delivery history. It "
                      "cannot be undone; the audit log keeps a record of it.",
                      rec.credential.title)],
            "Delete the recipient", url_for("pages.recipient", recipient_id=rec.id),
            danger=True)
    who = audit.describe(rec)
    changes.delete_recipients([rec])
    flash(sentence("Deleted {}.", who), "success")
    return redirect(back, 303)


# --- lookup -------------------------------------------------------------------------------------

@bp.route("/lookup")
def lookup():
    q = queries.ListArgs.from_args(request.args).q
    results = queries.lookup(db.session, q) if q else []
    did_you_mean = check_address(q).suggestion if "@" in q else None
    suggestions = {r.id: check_address(r.email).suggestion for r in results
                   if r.email and (r.status in (BOUNCED, NOT_SENT) or r.email_error)}
    credential_id = queries.record_id(q)
    credential = db.session.get(Credential, credential_id) if credential_id else None
    # Each (status, cause) found, in the order of the results: explained once, not per row.
    advice = list(dict.fromkeys((r.status, r.cause) for r in results))
    return render_template("lookup.html", q=q, results=results, did_you_mean=did_you_mean,
                           suggestions=suggestions, credential=credential, advice=advice)


# --- the embedded sink's outbox -----------------------------------------------------------------

@bp.route("/outbox")
def outbox():
    sink = current_app.extensions.get("helpdesk_sink")
    if sink is None:
        abort(404, "The outbox shows what the embedded SMTP sink caught; it is not running.")
    return render_template("outbox.html", messages=list(reversed(sink.messages)))


@bp.route("/outbox/<int:index>")
def outbox_message(index: int):
    sink = current_app.extensions.get("helpdesk_sink")
    if sink is None or not 0 <= index < len(sink.messages):
        abort(404)
    return render_template("outbox_message.html", message=sink.messages[index], index=index)

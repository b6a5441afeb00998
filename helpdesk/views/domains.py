"""Recipients grouped by their email domain: where bounces pile up, the allowlist request for the
company's IT, a bulk resend once they have acted, and share links to a public status page."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   session, url_for)
from sqlalchemy import select

from .. import publishing, queries, sharing
from ..addresses import check_address
from ..bidi import sentence
from ..models import DeliveryEvent, Delivery, Recipient, ShareLink, db
from ..status import BOUNCED
from .pages import flash_bulk_resend, recipient_filter

bp = Blueprint("domains", __name__, url_prefix="/domains")


@bp.route("")
def index():
    listed = queries.ListArgs.from_args(request.args)
    size = current_app.config["PAGE_SIZE"]
    stats, total = queries.domain_page(db.session, listed.page, size, listed.q)
    return render_template("domains.html", stats=stats, q=listed.q,
                           typos={s.domain: typo_of(s.domain) for s in stats if s.bounced},
                           page=queries.Page(stats, listed.page, size, total),
                           alert_threshold=int(current_app.config["DOMAIN_BOUNCE_ALERT"]))


def _latest_bounce_reply(domain: str) -> str | None:
    """The last mail server's reply to a bounced email at the domain, quoted to its IT."""
    return db.session.scalar(
        select(DeliveryEvent.mta_response).join(Delivery).join(Recipient)
        .where(Recipient.email_domain == domain, DeliveryEvent.level == BOUNCED,
               DeliveryEvent.mta_response.is_not(None))
        .order_by(DeliveryEvent.occurred_at.desc()).limit(1))


def allowlist_request(domain: str, bounced: int, reply: str | None, share_url: str | None,
                      expires: datetime | None) -> tuple[str, str]:
    """(subject, body) of the message asking a company's IT to allowlist the sender."""
    cfg = current_app.config
    sender, organisation = cfg["SENDER"], cfg["ORGANISATION"]
    lines = [
        "Hello,",
        "",
        f"{organisation} sends digital credentials (certificates and badges) by email from "
        f"{sender}. Your mail server refused {bounced} of these emails sent to addresses at "
        f"{domain}.",
    ]
    if reply:
        lines += ["", f"The latest reply from your server was: {reply}"]
    lines += [
        "",
        f"Could you allowlist the sender address {sender} on your mail server and spam filter, "
        "so that these emails reach your colleagues? Once that is done, we will send them again.",
    ]
    if share_url:
        lines += ["", "This page shows the delivery status of each email to your domain "
                  f"(it works until {expires:%d %B %Y}):", share_url]
    lines += ["", "Thank you,", organisation]
    return f"Please allowlist {sender} for our credential emails", "\n".join(lines)


def typo_of(domain: str) -> str | None:
    """The mailbox domain this one is likely a slip for (``gmial.com`` → ``gmail.com``): then
    it is no company, its IT cannot be asked anything and the fix is each address."""
    suggestion = check_address(f"postmaster@{domain}").suggestion
    return suggestion.rpartition("@")[2] if suggestion else None


def _domain_or_404(domain: str) -> tuple[str, queries.DomainStats]:
    domain = domain.strip().lower()
    stats = queries.domain_stats(db.session, [domain])[0]
    if stats.total == 0:
        abort(404, f"No recipient has an address at {domain}.")
    return domain, stats


def _render_domain(domain: str, stats: queries.DomainStats, share_url: str | None = None,
                   expires: datetime | None = None):
    cfg = current_app.config
    f = recipient_filter(domain=domain)
    page, counts = queries.recipient_page(db.session, f, cfg["PAGE_SIZE"])
    causes = queries.cause_counts(db.session, Recipient.email_domain == domain)
    hopeless = queries.resend_cannot_help(db.session, Recipient.email_domain == domain,
                                          Recipient.status == BOUNCED)
    typo = typo_of(domain)
    # A refusal by policy is the server saying it blocks the sender; many bounces suggest it.
    alert = not typo and (causes.get("policy", 0) > 0
                          or stats.bounced >= int(cfg["DOMAIN_BOUNCE_ALERT"]))
    subject, body = allowlist_request(domain, stats.bounced, _latest_bounce_reply(domain),
                                      share_url, expires)
    mailto = f"mailto:postmaster@{quote(domain)}?subject={quote(subject)}&body={quote(body)}"
    return render_template("domain.html", domain=domain, stats=stats, alert=alert, f=f,
                           share_links=sharing.links_for(domain), now=datetime.now(timezone.utc),
                           shareable=not typo and domain not in sharing.PUBLIC_MAILBOX_DOMAINS,
                           page=page, counts=counts, sender=cfg["SENDER"], subject=subject,
                           message=body, mailto=mailto, share_url=share_url, expires=expires,
                           typo=typo, causes=causes, hopeless=hopeless,
                           alert_threshold=int(cfg["DOMAIN_BOUNCE_ALERT"]))


@bp.route("/<domain>")
def detail(domain: str):
    domain, stats = _domain_or_404(domain)
    # A link just made is shown once, on the page its creation redirected to.
    made = session.pop("new_share_link", None)
    if made and made.get("domain") == domain:
        link = db.session.get(ShareLink, made["id"])
        if link is not None:
            return _render_domain(domain, stats, share_url=made["url"], expires=link.expires_at)
    return _render_domain(domain, stats)


@bp.route("/<domain>/share", methods=["POST"])
def share(domain: str):
    """Make a share link (an organisation's domain only), then show it once on the domain's
    page: POST, redirect, GET, so a reload makes no second link."""
    domain, _ = _domain_or_404(domain)
    try:
        link, token = sharing.create_link(domain, float(current_app.config["SHARE_LINK_DAYS"]),
                                          typo_of(domain))
    except sharing.ShareLinkRefused as error:
        abort(400, f"{error}.")
    url = current_app.config["BASE_URL"].rstrip("/") + url_for("share.status", token=token)
    session["new_share_link"] = {"domain": domain, "id": link.id, "url": url}
    flash(f"Share link created: it works until {link.expires_at:%d %B %Y}. It is in the "
          "message below; copy it now, it is not shown again.", "success")
    return redirect(url_for("domains.detail", domain=domain) + "#share-link", 303)


@bp.route("/<domain>/share/<int:link_id>/revoke", methods=["POST"])
def revoke_share(domain: str, link_id: int):
    link = db.get_or_404(ShareLink, link_id)
    if link.domain != domain.strip().lower():
        abort(404)
    sharing.revoke(link)
    flash(sentence(f"Share link #{link.id} for {{}} revoked: it no longer opens.", link.domain),
          "success")
    return redirect(url_for("domains.detail", domain=link.domain) + "#share-links", 303)


@bp.route("/<domain>/resend", methods=["POST"])
def resend_bounced(domain: str):
    domain, _ = _domain_or_404(domain)
    result = publishing.resend_bounced_at_domain(
        domain, include_all=request.form.get("include_all") == "on")
    sent = result.queued
    flash_bulk_resend(result,
                      sentence(f"{sent} bounced recipient{'s' if sent != 1 else ''} at {{}}",
                               domain),
                      sentence("No bounced recipient at {} has a usable address", domain))
    return redirect(url_for("domains.detail", domain=domain), 303)

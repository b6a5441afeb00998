"""The help center: public, so a recipient's IT can read it too."""
from __future__ import annotations

from flask import Blueprint, abort, get_template_attribute, render_template, request
from markupsafe import Markup

from .. import helpcenter, plugins
from ..auth import public
from ..causes import CAUSES
from ..status import STATUSES

bp = Blueprint("help", __name__, url_prefix="/help")


def _articles() -> list[helpcenter.Article]:
    return helpcenter.all_articles(plugins.hook().helpdesk_help_articles())


def _registry_block(name: str) -> str:
    if name == "status-legend":
        return str(get_template_attribute("_macros.html", "legend")())
    if name == "causes":
        return render_template("help/_causes.html", causes=CAUSES.values())
    return render_template("help/_tips.html", statuses=STATUSES.values())


@bp.route("")
@public
def index():
    query = request.args.get("q", "").strip()
    articles = _articles()
    if query:
        articles = [a for a in articles if a.matches(query)]
    return render_template("help/index.html", articles=articles, query=query)


@bp.route("/<slug>")
@public
def article(slug: str):
    found = next((a for a in _articles() if a.slug == slug), None)
    if found is None:
        abort(404)
    return render_template("help/article.html", article=found,
                           body=Markup(helpcenter.render(found, _registry_block)))

"""The help center: public, so a recipient's IT can read it too."""
from __future__ import annotations

from flask import Blueprint, abort, get_template_attribute, render_template, request
from markupsafe import Markup

from .. import helpcenter, plugins
from ..auth import public
from ..causes import CAUSES, STATUS_CAUSES
from ..status import STATUSES

bp = Blueprint("help", __name__, url_prefix="/help")
MAX_QUERY = 200


def _articles() -> list[helpcenter.Article]:
    return helpcenter.all_articles(plugins.hook().helpdesk_help_articles())


def _registry_block(name: str) -> str:
    if name == "status-legend":
        return str(get_template_attribute("_macros.html", "legend")())
    if name == "causes":
        return render_template("help/_causes.html", causes=CAUSES.values())
    if name == "providers":
        return render_template("help/_providers.html", providers=plugins.providers())
    return render_template("help/_tips.html", statuses=STATUSES.values(),
                           causes_of={key: [CAUSES[c] for c in keys]
                                      for key, keys in STATUS_CAUSES.items()})


def _documents(articles: list[helpcenter.Article]) -> list[helpcenter.Document]:
    """What the pages show, to search: each article as rendered, and the registries' entries."""
    return ([helpcenter.article_document(a, helpcenter.render(a, _registry_block))
             for a in articles]
            + helpcenter.registry_documents(STATUSES.values(), CAUSES.values()))


@bp.route("")
@public
def index():
    query = " ".join(request.args.get("q", "").split())[:MAX_QUERY]
    articles = _articles()
    hits = helpcenter.search(_documents(articles), query) if query else []
    return render_template("help/index.html", articles=articles, hits=hits, query=query)


@bp.route("/<slug>")
@public
def article(slug: str):
    found = next((a for a in _articles() if a.slug == slug), None)
    if found is None:
        abort(404)
    return render_template("help/article.html", article=found,
                           body=Markup(helpcenter.render(found, _registry_block)))

"""Help-center articles: Markdown files shipped in ``helpdesk/help`` (front matter: title,
summary, order) plus those plugins add, rendered with markdown-it and sanitised with nh3.

An article never copies the registries' texts: a paragraph holding only ``[[status-legend]]``,
``[[quick-tips]]`` or ``[[causes]]`` is replaced by what the status or cause registry says, so
they cannot drift."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import frontmatter
import nh3
from markdown_it import MarkdownIt

ARTICLES_DIR = Path(__file__).parent / "help"
PLACEHOLDER = re.compile(r"<p>\[\[(status-legend|quick-tips|causes)\]\]</p>")
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    summary: str
    order: int
    body: str  # Markdown

    def matches(self, query: str) -> bool:
        words = query.lower().split()
        text = f"{self.title} {self.summary} {self.body}".lower()
        return all(w in text for w in words)


def builtin_articles() -> list[Article]:
    found = []
    for path in sorted(ARTICLES_DIR.iterdir()):
        if path.name.endswith(".md"):
            post = frontmatter.loads(path.read_text(encoding="utf-8"))
            found.append(Article(path.name[:-3], str(post["title"]), str(post.get("summary", "")),
                                 int(post.get("order", 100)), post.content))
    return found


def all_articles(extra: Iterable[Iterable[Mapping]] = ()) -> list[Article]:
    """The built-in articles and the plugins' (``helpdesk_help_articles`` results), in order."""
    articles = {a.slug: a for a in builtin_articles()}
    for offered in extra:
        for a in offered or ():
            articles.setdefault(a["slug"], Article(a["slug"], a["title"], a.get("summary", ""),
                                                   int(a.get("order", 100)), a["body"]))
    return sorted(articles.values(), key=lambda a: (a.order, a.title))


def render(article: Article, blocks: Callable[[str], str]) -> str:
    """Sanitised HTML; ``blocks(name)`` renders a registry placeholder (trusted HTML)."""
    html = nh3.clean(_markdown.render(article.body))
    return PLACEHOLDER.sub(lambda m: blocks(m.group(1)), html)

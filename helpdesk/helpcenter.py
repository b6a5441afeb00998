"""Help-center articles: Markdown files shipped in ``helpdesk/help`` (front matter: title,
summary, order) plus those plugins add, rendered with markdown-it and sanitised with nh3.

An article never copies the registries' texts: a paragraph holding only ``[[status-legend]]``,
``[[quick-tips]]``, ``[[causes]]`` or ``[[providers]]`` is replaced by what the status or cause
registry or the installed plugins say, so they cannot drift. A core article names no provider:
each one's help comes from its plugin.

Search reads what the pages show: each article's rendered text (title, headings, body) and, as
results of their own, each status's meaning and tips and each cause's explanation and actions,
ranked by BM25 over those fields (a word in a title counts most)."""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import frontmatter
import nh3
from markdown_it import MarkdownIt

from .causes import status_tips

ARTICLES_DIR = Path(__file__).parent / "help"
PLACEHOLDER = re.compile(r"<p>\[\[(status-legend|quick-tips|causes|providers)\]\]</p>")
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    summary: str
    order: int
    body: str  # Markdown


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


# --- search ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Document:
    """One thing a search can find: an article, or one registry entry at its anchor in the
    article that shows it."""

    kind: str  # "article", "status" or "cause"
    title: str
    slug: str
    anchor: str | None
    headings: str
    body: str


@dataclass(frozen=True)
class Hit:
    document: Document
    score: float
    excerpt: str


class _Text(HTMLParser):
    """An article's rendered HTML as the reader sees it: its headings apart from the rest."""

    HEADINGS = frozenset({"h1", "h2", "h3", "h4"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[str] = []
        self.body: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs) -> None:
        self._depth += tag in self.HEADINGS

    def handle_endtag(self, tag) -> None:
        if tag in self.HEADINGS and self._depth:
            self._depth -= 1
        self.body.append(" ")  # the end of a block or a cell parts its words

    def handle_data(self, data) -> None:
        (self.headings if self._depth else self.body).append(data)


def article_document(article: Article, html: str) -> Document:
    text = _Text()
    text.feed(html)
    text.close()
    return Document("article", article.title, article.slug, None,
                    " ".join(" ".join(text.headings).split()),
                    " ".join(f"{article.summary} {''.join(text.body)}".split()))


def registry_documents(statuses: Iterable, causes: Iterable) -> list[Document]:
    """A status's meaning and tips (at its entry in the statuses article), a cause's
    explanation and actions (at its entry in the causes article)."""
    def tips(items) -> str:
        return " ".join(f"{tip.title}. {tip.text}" for tip in items)

    return ([Document("status", s.label, "statuses", f"status-{s.key}",
                      f"What “{s.label}” means", f"{s.meaning} {tips(status_tips(s.key))}")
             for s in statuses]
            + [Document("cause", c.label, "causes", f"cause-{c.key}",
                        f"Why an email failed: {c.label}", f"{c.explanation} {tips(c.actions)}")
             for c in causes])


# Words that carry no subject: "what does sending mean" is a search for "sending mean".
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it its me my of on or so "
    "that the their them there this to was what when where which who why will with you your"
    .split())
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# Field weights: a word in a title says more about the page than one in passing.
WEIGHTS = (("title", 4.0), ("headings", 2.0), ("body", 1.0))
K1, B = 1.2, 0.75


def stem(word: str) -> str:
    """A light English stemmer, enough for a help center: sending, sends → send; bounced,
    bounces → bounc; addresses → address; statuses → status; meaning → mean."""
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def search(documents: Sequence[Document], query: str, limit: int = 20) -> list[Hit]:
    """The documents matching any of the query's words, most relevant first: BM25 with the
    title, headings and body as weighted fields, so rare words and words in titles count
    most, and a document with every word beats one with some; then the share of its title's
    words the query names."""
    wanted = list(dict.fromkeys(terms(query)))
    if not wanted:
        return []
    fields = [{name: Counter(terms(getattr(d, name))) for name, _ in WEIGHTS} for d in documents]
    lengths = [sum(weight * sum(f[name].values()) for name, weight in WEIGHTS) for f in fields]
    average = (sum(lengths) / len(lengths)) if lengths else 1.0
    found = Counter(t for f in fields for t in wanted if any(t in f[name] for name, _ in WEIGHTS))
    hits = []
    for document, f, length in zip(documents, fields, lengths):
        score = 0.0
        for t in wanted:
            tf = sum(weight * f[name][t] for name, weight in WEIGHTS)
            if tf:
                idf = math.log(1 + (len(documents) - found[t] + 0.5) / (found[t] + 0.5))
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average))
        if score:
            # A title the query names whole ("sending" in "what does sending mean") is what
            # the reader asked for: up to twice the score.
            title = set(f["title"])
            score *= 1 + (len(title & set(wanted)) / len(title) if title else 0)
            # A document the query names by its title is shown by its lead (a status's
            # meaning), not by a passing sentence that shares a word.
            lead = bool(title & set(wanted))
            hits.append(Hit(document, score, excerpt(document.body, [] if lead else wanted)))
    hits.sort(key=lambda h: (-h.score, h.document.kind != "article", h.document.title))
    return hits[:limit]


def excerpt(text: str, wanted: Sequence[str], width: int = 180) -> str:
    """The sentence of ``text`` holding most of the wanted words (the first of those, so the
    first sentence when nothing is wanted), cut to about ``width``."""
    sentences = re.split(r"(?<=[.!?])\s+", text) or [text]
    best = max(sentences, key=lambda s: len(set(terms(s)) & set(wanted)))
    return best if len(best) <= width else best[:width].rsplit(" ", 1)[0] + "…"

"""Names and addresses from outside, shown beside our own words. A right-to-left override in a
name (``"\u202egnp.exe"``) would otherwise turn around the text that follows it: "Resend to
Ann" could read backwards, a file name could pass for another. Pages isolate each such value
(``<bdi>``, so it cannot reorder what is around it); plain text (emails, CSV exports), which has
no isolation that every reader honours, has the bidi controls taken out.

Pure: no Flask."""
from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

# Unicode's explicit directional formatting characters: embeddings and overrides (U+202A-E),
# isolates (U+2066-9) and the marks (LRM, RLM, ALM).
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_controls(value: Any) -> str:
    """The text with every bidi control taken out (``None`` is the empty text)."""
    return BIDI_CONTROLS.sub("", "" if value is None else str(value))


def isolated(value: Any) -> Markup:
    """The value escaped inside ``<bdi>``: its direction is its own, the page's is untouched."""
    return Markup("<bdi>%s</bdi>") % ("" if value is None else value)


def sentence(text: str, *values: Any) -> Markup:
    """Our words with outside values in place of each ``{}``, every value escaped and isolated:
    for the messages and headings that name a recipient, an address or a title."""
    return escape(text).format(*(isolated(v) for v in values))

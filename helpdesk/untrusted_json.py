"""JSON from outside (API bodies, webhooks, forms), read with a bound on its nesting.

Python's parser recurses once per level: a body of ten thousand ``[`` would end in a
``RecursionError`` (a 500) rather than a clear refusal. The nesting is measured first, on the raw
bytes and without recursion, so a webhook can be read to find its signature before anything in
it is trusted. No Flask here."""
from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

# Far deeper than any API body or provider payload we read; far shallower than the interpreter's
# recursion limit.
MAX_DEPTH = 32

_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(set(range(256)) - set(_STRUCTURE))
_STRING = re.compile(rb'"[^"]*"')  # once only quotes and brackets are left
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JSONInputError(ValueError):
    """The text is not UTF-8 JSON, or it nests deeper than allowed; the message says which."""


def nesting_depth(raw: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar)."""
    # Escaped backslashes, then escaped quotes, go first: what is left of a string is its two
    # quotes around any brackets it holds, which are text, not nesting.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", unescaped.translate(None, _NOT_STRUCTURE)).replace(b'"', b"")
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """The value of a JSON text that nests at most ``max_depth`` levels.

    :raises JSONInputError: not UTF-8 text, not JSON, or nested too deeply.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if nesting_depth(data) > max_depth:
        raise JSONInputError(f"the JSON nests deeper than {max_depth} levels")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise JSONInputError("the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise JSONInputError(f"the body is not JSON: {error}") from None

"""The webhook's JSON body -> Python values, refusing nesting deeper than a bound first.

`json.loads` recurses once per nesting level (a few thousand levels raise RecursionError), so
the depth is measured without recursion before it runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from receiver.errors import BadRequest

MAX_JSON_DEPTH = 64
# A JSON string (the unrolled-loop form: linear, no backtracking across escapes).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_nesting_problem(body: bytes, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON text's arrays/objects cannot be parsed safely (too deep, unpaired), else None.

    No recursion: strings are cut out, everything but brackets dropped, then innermost
    `[]`/`{}` pairs are removed one level per round; anything left after `limit` rounds is
    deeper than the bound.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_A_BRACKET)
    for _ in range(limit):
        if not brackets:
            return None
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(brackets):
            return "its brackets do not pair"
        brackets = shorter
    return f"it is nested deeper than {limit} levels" if brackets else None


def load_json_body(body: bytes) -> Any:
    """The parsed body; BadRequest when it is not JSON or nests deeper than MAX_JSON_DEPTH."""
    problem = json_nesting_problem(body)
    if problem is not None:
        raise BadRequest(f"body is not valid JSON: {problem}")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("body is not valid JSON") from None

"""The webhook's JSON body -> Python values, refusing nesting deeper than a bound first.

`json.loads` recurses once per nesting level (a few thousand levels raise RecursionError), so
the depth is measured without recursion before it runs.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from receiver.errors import BadRequest

MAX_JSON_DEPTH = 64
# A JSON string (the unrolled-loop form: linear, no backtracking across escapes).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


def json_nesting_problem(body: bytes, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON text cannot be parsed safely (arrays/objects nested deeper than `limit`)."""
    if body.count(b"[") + body.count(b"{") <= limit:  # too few openings to nest that deep
        return None
    # No recursion and no Python-level loop: strings are cut out, everything but brackets
    # dropped, each bracket mapped to +1/-1, and the running sum is the nesting depth.
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_A_BRACKET)
    steps = memoryview(brackets.translate(_DEPTH_STEP)).cast("b")
    if max(accumulate(steps), default=0) > limit:
        return f"it is nested deeper than {limit} levels"
    return None


def load_json_body(body: bytes) -> Any:
    """The parsed body; BadRequest when it is not JSON or nests deeper than MAX_JSON_DEPTH."""
    problem = json_nesting_problem(body)
    if problem is not None:
        raise BadRequest(f"body is not valid JSON: {problem}")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("body is not valid JSON") from None

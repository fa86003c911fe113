"""Strict JSON for headers written by others (.safetensors) and by tq (collections).

UTF-8 only; no NaN or Infinity; no duplicate keys; nested at most a given depth, counted on
the bytes before the parser recurses into them (spec 18.1: the largest number of arrays and
objects open at once; a scalar is 0 deep, `{}` and `[1]` 1, `{"a": []}` 2).  Problems raise
JSONProblem (a ValueError); each reader words it for its own kind of file.
"""

from __future__ import annotations

import json


class JSONProblem(ValueError):
    """The text is not strict JSON, or nests deeper than allowed."""


def _no_constant(text):
    raise ValueError(f"{text} is not JSON")


def _pairs(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def depth_of_bytes(raw: bytes) -> int:
    """The nesting depth of JSON text, counted on its bytes (brackets inside strings do
    not count)."""
    depth = top = 0
    in_str = esc = False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == 0x5C:
                esc = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            top = max(top, depth)
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return top


def depth(obj) -> int:
    """The nesting depth of a parsed JSON value, as depth_of_bytes counts its text."""
    top, stack = 0, [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            d += 1
            top = max(top, d)
            stack.extend((v, d) for v in (o.values() if isinstance(o, dict) else o))
    return top


def loads(raw: bytes, what: str, limit: int):
    """The value of the strict JSON text `raw` (`what` names it in a JSONProblem)."""
    top = depth_of_bytes(raw)
    if top > limit:
        raise JSONProblem(f"{what} is nested {top} deep (the limit is {limit})")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                          object_pairs_hook=_pairs)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise JSONProblem(f"{what} is not valid JSON ({str(e).splitlines()[0][:80]})") from None

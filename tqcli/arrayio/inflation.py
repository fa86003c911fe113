"""Inputs that inflate: a zip member (.npz), a zarr chunk, an HDF5 chunk behind a filter.

A compressed input can declare far more than it holds: 2 MB of deflated zeros are a
2 GiB .npz member, a zarr chunk of a few KB can decode to 1 GiB.  tq checks what a unit
will inflate to from its metadata, before reading it:

* check_unit: a unit tq's readers decode whole at once (a zarr chunk, an HDF5 chunk behind
  a filter) must fit the memory budget (limits.DEFAULT_MEMORY_LIMIT, --memory /
  memory_limit=);
* check_ratio: the decoded bytes of what is stored compressed must be at most the
  expansion limit (limits.DEFAULT_MAX_RATIO, --max-ratio / max_ratio=) times its stored
  bytes, as for a .tqz (spec 13.9).  Float data compress about 1.1:1 with deflate or zstd;
  zeros about 1000:1.

Both refusals are resource limits (InputError kinds "memory" and "ratio"): the file may be
valid, and the message names the flag that accepts it.
"""

from __future__ import annotations

import math

from .. import limits
from ..errors import InputError


def check_unit(what: str, decoded: int, memory_limit=None) -> None:
    limit = limits.DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit
    if decoded > limit:
        raise InputError(f"{what} decodes to {limits.format_size(decoded)} at once, above "
                         f"the memory limit of {limits.format_size(int(limit))} (raise it "
                         f"with --memory or memory_limit=)", kind="memory")


def check_ratio(what: str, decoded: int, stored: int, max_ratio=None) -> None:
    limit = float(limits.DEFAULT_MAX_RATIO if max_ratio is None else max_ratio)
    if math.isinf(limit) or decoded <= limit * stored:
        return
    ratio = f"{decoded / stored:,.0f} x" if stored else "from nothing"
    raise InputError(f"{what}: {limits.format_size(stored)} inflate to "
                     f"{limits.format_size(decoded)} ({ratio}, above the expansion limit "
                     f"of {limit:g} x: raise it with --max-ratio or max_ratio= for a file "
                     f"you trust)", kind="ratio")

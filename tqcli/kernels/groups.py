"""The group/task scaffold every driver shares, and the per-group code packing.

A driver splits its n rows into groups of LANES vectors (the last group may be partial:
rows = n - r0 < LANES, its unused lanes computed on zeros or leftovers and never stored)
and the groups into tasks of GROUPS_PER_TASK groups.  A driver is a serial, GIL-free
function over a range of tasks [task0, task1); tqcli/kernels/__init__.py splits the tasks
of a call into one contiguous range per worker thread.  Each task allocates its scratch
once and runs the operation's group body on its groups in order.  A group's codes fill a
whole number of bytes (8 codes of b bits are b bytes), so each group owns its output bytes
and the result cannot depend on the thread count or on the task size.

    ngroups = group_count(n)
    for task in range(task0, task1):
        scratch = ...
        g0, g1 = task_groups(task, ngroups)
        for g in range(g0, g1):
            r0, rows = group_rows(g, n)
            <group body>

The drivers are serial on purpose: numba's parallel loops (prange) compile the loop body
twice and cost about half of a first run's compile time, and a thread pool over GIL-free
calls gives the same speed.  For the same reason the helpers are plain jitted functions
that LLVM inlines, not numba-level inlines (inline="always" copies and retypes the
callee's IR at every call site).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .lanes import LANES

GROUPS_PER_TASK = 16  # groups handled by one task (scratch is allocated per task)


def task_count(n: int) -> int:
    """The number of tasks for n rows (plain Python: the dispatcher's side)."""
    ngroups = (n + LANES - 1) // LANES
    return (ngroups + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK


@njit(cache=True, inline="always")
def group_count(n):
    """The number of groups for n rows."""
    return (n + LANES - 1) // LANES


@njit(cache=True, inline="always")
def task_groups(task, ngroups):
    """The range [g0, g1) of groups that parallel task `task` handles."""
    return task * GROUPS_PER_TASK, min(ngroups, (task + 1) * GROUPS_PER_TASK)


@njit(cache=True, inline="always")
def group_rows(g, n):
    """(first row, number of rows) of group g: LANES rows, fewer in the last group."""
    r0 = g * LANES
    return r0, min(LANES, n - r0)


@njit(cache=True)
def axpy8(acc, off, s, v):
    """acc[off + l] += s * v[l] for the 8 lanes (a multiply, then an add)."""
    for l in range(LANES):
        acc[off + l] += s * v[l]


# ----------------------------------------------------------------------------- code packing


@njit(cache=True)
def to_rows(codes, rows, d, codes8):
    """Lane-interleaved codes -> row-major (8, d); unused lanes get code 0 (padding)."""
    for l in range(LANES):
        dst = codes8[l]
        if l < rows:
            for i in range(d):
                dst[i] = codes[i * LANES + l]
        else:
            dst[:] = 0



@njit(cache=True)
def pack_group(codes8, d, bits, out, base, limit):
    """Pack the group's row-major codes, LSB first: every 8 codes fill `bits` bytes.

    Bytes at or beyond `limit` (the end of the chunk's code section) are not written.
    Widths that divide 8 get straight-line loops the compiler vectorises.
    """
    flat = codes8.reshape(LANES * d)
    nb = min(d * bits, limit - base)
    if bits == 8:
        for o in range(nb):
            out[base + o] = flat[o]
    elif bits == 4:
        for o in range(nb):
            out[base + o] = flat[2 * o] | (flat[2 * o + 1] << np.uint8(4))
    elif bits == 2:
        for o in range(nb):
            out[base + o] = (flat[4 * o] | (flat[4 * o + 1] << np.uint8(2))
                             | (flat[4 * o + 2] << np.uint8(4))
                             | (flat[4 * o + 3] << np.uint8(6)))
    elif bits == 1:
        for o in range(nb):
            e = 8 * o
            out[base + o] = (flat[e] | (flat[e + 1] << np.uint8(1))
                             | (flat[e + 2] << np.uint8(2)) | (flat[e + 3] << np.uint8(3))
                             | (flat[e + 4] << np.uint8(4)) | (flat[e + 5] << np.uint8(5))
                             | (flat[e + 6] << np.uint8(6)) | (flat[e + 7] << np.uint8(7)))
    else:
        for m in range(d):
            v = np.uint64(0)
            for j in range(LANES):
                v |= np.uint64(flat[m * LANES + j]) << np.uint64(j * bits)
            o = base + m * bits
            for k in range(bits):
                if o + k < limit:
                    out[o + k] = np.uint8((v >> np.uint64(8 * k)) & np.uint64(0xFF))


@njit(cache=True)
def unpack_group(codes, base, limit, d, bits, codes8):
    """Inverse of pack_group; codes past `limit` (unused lanes) come out as 0."""
    flat = codes8.reshape(LANES * d)
    nb = min(d * bits, limit - base)
    if bits == 8:
        for o in range(nb):
            flat[o] = codes[base + o]
    elif bits == 4:
        for o in range(nb):
            v = codes[base + o]
            flat[2 * o] = v & np.uint8(15)
            flat[2 * o + 1] = v >> np.uint8(4)
    elif bits == 2:
        for o in range(nb):
            v = codes[base + o]
            flat[4 * o] = v & np.uint8(3)
            flat[4 * o + 1] = (v >> np.uint8(2)) & np.uint8(3)
            flat[4 * o + 2] = (v >> np.uint8(4)) & np.uint8(3)
            flat[4 * o + 3] = v >> np.uint8(6)
    elif bits == 1:
        for o in range(nb):
            v = codes[base + o]
            e = 8 * o
            for j in range(8):
                flat[e + j] = (v >> np.uint8(j)) & np.uint8(1)
    else:
        mask = np.uint64((1 << bits) - 1)
        for m in range(d):
            o = base + m * bits
            v = np.uint64(0)
            for k in range(bits):
                if o + k < limit:
                    v |= np.uint64(codes[o + k]) << np.uint64(8 * k)
            for j in range(LANES):
                flat[m * LANES + j] = np.uint8((v >> np.uint64(j * bits)) & mask)
        return
    for e in range(nb * 8 // bits, LANES * d):
        flat[e] = 0


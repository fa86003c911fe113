"""Plain-numpy versions of the kernels, operation for operation, for tests to compare with.

They vectorise over vectors and loop over coordinates where the kernels accumulate a sum,
so that every float is rounded in the same order as in tqcli/kernels/.  They are slow and
are never used to compress anything.

Every function taking `plan` takes a rotation plan (signs, perms, blocks, block_scales), as
the kernels do, or a RotationPlan holding them (as_plan).
"""

from __future__ import annotations

import math

import numpy as np


def _fwht(t: np.ndarray, off: int, p: int, scale: np.float32) -> None:
    """Normalised Walsh-Hadamard transform of columns off..off+p-1, stage by stage
    (h = 1, 2, 4, ...: sum first, difference second), then the multiplication by scale."""
    block = t[:, off:off + p]
    h = 1
    while h < p:
        v = block.reshape(t.shape[0], p // (2 * h), 2, h)
        a = v[:, :, 0, :].copy()
        b = v[:, :, 1, :].copy()
        v[:, :, 0, :] = a + b
        v[:, :, 1, :] = a - b
        h *= 2
    block *= scale


def as_plan(rot) -> tuple:
    """A rotation plan (signs, perms, blocks, block_scales), given one or a RotationPlan
    (tqcli/codec/rotations/base.py); see tqcli/kernels/__init__.py for the arrays."""
    return rot if isinstance(rot, tuple) else tuple(rot.kernel_args)


def rotate_forward(t: np.ndarray, plan) -> np.ndarray:
    """Rounds 0..R-1: t <- signs[r] * t[:, perms[r]], then blocks k = 0..K-1."""
    signs, perms, blocks, block_scales = as_plan(plan)
    t = np.array(t, dtype=np.float32, copy=True)
    for r in range(signs.shape[0]):
        t = signs[r] * t[:, perms[r]]
        for k in range(blocks.shape[1]):
            off, size = int(blocks[r, k, 0]), int(blocks[r, k, 1])
            if size > 0:
                _fwht(t, off, size, block_scales[r, k])
    return t


def rotate_inverse(t: np.ndarray, plan) -> np.ndarray:
    """Rounds R-1..0: blocks K-1..0 (each transform is its own inverse), then
    t[:, perms[r]] <- signs[r] * t."""
    signs, perms, blocks, block_scales = as_plan(plan)
    t = np.array(t, dtype=np.float32, copy=True)
    for r in range(signs.shape[0] - 1, -1, -1):
        for k in range(blocks.shape[1] - 1, -1, -1):
            off, size = int(blocks[r, k, 0]), int(blocks[r, k, 1])
            if size > 0:
                _fwht(t, off, size, block_scales[r, k])
        out = np.empty_like(t)
        out[:, perms[r]] = signs[r] * t
        t = out
    return t


def unit_directions(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 unit directions and float64 norms, as the kernel computes them."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(np.abs(x), axis=1)
    zero = m == 0
    m_safe = np.where(zero, 1.0, m)
    w = x / m_safe[:, None]
    ss = np.zeros(x.shape[0])
    for i in range(x.shape[1]):
        ss += w[:, i] * w[:, i]
    root = np.sqrt(ss)
    u = (w / np.where(zero, 1.0, root)[:, None]).astype(np.float32)
    u[zero] = 0
    return u, np.where(zero, 0.0, m * root)


def quantize(y: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.searchsorted(bounds, y.astype(np.float64), side="left")


def scales(rule: int, norms: np.ndarray, y: np.ndarray, cents: np.ndarray, idx: np.ndarray):
    c = cents[idx].astype(np.float64)
    yc = np.zeros(y.shape[0])
    cc = np.zeros(y.shape[0])
    for i in range(y.shape[1]):
        yc += y[:, i].astype(np.float64) * c[:, i]
        cc += c[:, i] * c[:, i]
    zero = norms == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if rule == 0:
            s = np.where(cc != 0, norms * (yc / cc), 0.0)
        elif rule == 1:
            s = norms.copy()
        else:
            s = np.where(yc != 0, norms / yc, 0.0)
    return np.where(zero, 0.0, s)


def pack(idx: np.ndarray, bits: int) -> np.ndarray:
    """LSB-first bit stream: code k occupies stream bits [k*bits, (k+1)*bits)."""
    flat = np.asarray(idx, dtype=np.uint16).reshape(-1)
    planes = (flat[:, None] >> np.arange(bits, dtype=np.uint16)) & 1
    return np.packbits(planes.astype(np.uint8).reshape(-1), bitorder="little")


def unpack(buf: np.ndarray, bits: int, count: int) -> np.ndarray:
    planes = np.unpackbits(np.asarray(buf, np.uint8), bitorder="little")[: count * bits]
    planes = planes.reshape(count, bits).astype(np.int64)
    return (planes << np.arange(bits)).sum(axis=1)


def encode_indices(x, plan, bounds, cents, rule):
    """(n, d) cell indices and the scales of the rows of x (mse mode, before packing)."""
    u, norms = unit_directions(x)
    y = rotate_forward(u, plan)
    idx = quantize(y, bounds)
    return idx, scales(rule, norms, y, cents, idx)


def decode_indices(idx, scale_values, plan, cents):
    """Rows from their (n, d) cell indices and binary32 scales."""
    t = rotate_inverse(cents[idx], plan)
    s = np.asarray(scale_values, np.float32)[:, None]
    return np.where(s != 0, s * t, np.float32(0)).astype(np.float32)


def encode_mse(x, plan, bounds, cents, bits, rule):
    idx, s = encode_indices(x, plan, bounds, cents, rule)
    return pack(idx, bits), s


def decode_mse(codes, scale_values, plan, cents, bits, n):
    d = as_plan(plan)[0].shape[1]
    return decode_indices(unpack(codes, bits, n * d).reshape(n, d), scale_values, plan, cents)


def sketch_project(res: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """S r for each row r, accumulated over j in order in float32."""
    proj = np.zeros_like(res, dtype=np.float32)
    for j in range(res.shape[1]):
        proj += sketch[:, j][None, :] * res[:, j:j + 1]
    return proj


def encode_prod(x, plan, bounds, cents, bits, sketch):
    u, norms = unit_directions(x)
    y = rotate_forward(u, plan)
    n, d = y.shape
    if bits > 0:
        idx = quantize(y, bounds)
        res = (y - cents[idx]).astype(np.float32)
        codes = pack(idx, bits)
    else:
        res = y
        codes = np.zeros(0, np.uint8)
    gg = np.zeros(n)
    for i in range(d):
        gg += res[:, i].astype(np.float64) ** 2
    gammas = np.where(norms == 0, 0.0, np.sqrt(gg))
    q = sketch_project(res, sketch) >= 0
    return codes, pack(q.astype(np.uint8), 1), norms, gammas


def decode_prod(codes, qbits, scale_values, gamma_values, plan, cents, bits, sketch, n):
    d = as_plan(plan)[0].shape[1]
    q = np.where(unpack(qbits, 1, n * d).reshape(n, d) == 1, 1.0, -1.0).astype(np.float32)
    corr = np.zeros((n, d), np.float32)
    for i in range(d):
        corr += q[:, i:i + 1] * sketch[i][None, :]
    k = (math.sqrt(math.pi / 2.0) / d * np.asarray(gamma_values, np.float64)).astype(np.float32)
    if bits > 0:
        base = cents[unpack(codes, bits, n * d).reshape(n, d)]
    else:
        base = np.zeros((n, d), np.float32)
    t = rotate_inverse(base + k[:, None] * corr, plan)
    s = np.asarray(scale_values, np.float32)[:, None]
    return np.where(s != 0, s * t, np.float32(0)).astype(np.float32)

"""Plain-numpy versions of the kernels, operation for operation, for tests to compare with.

They vectorise over vectors and loop over coordinates where the kernels accumulate a sum,
so that every float is rounded in the same order as in tqcli/kernels.py.  They are slow and
are never used to compress anything.
"""

from __future__ import annotations

import math

import numpy as np


def _fwht(t: np.ndarray, off: int, p: int, scale: np.float32) -> None:
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


def rotate_forward(t: np.ndarray, rot) -> np.ndarray:
    t = np.array(t, dtype=np.float32, copy=True)
    d, p = rot.d, rot.block
    for r in range(rot.rounds):
        t = rot.signs[r] * t[:, rot.perms[r]]
        _fwht(t, 0, p, rot.block_scale)
        if p < d:
            _fwht(t, d - p, p, rot.block_scale)
    return t


def rotate_inverse(t: np.ndarray, rot) -> np.ndarray:
    t = np.array(t, dtype=np.float32, copy=True)
    d, p = rot.d, rot.block
    for r in range(rot.rounds - 1, -1, -1):
        if p < d:
            _fwht(t, d - p, p, rot.block_scale)
        _fwht(t, 0, p, rot.block_scale)
        out = np.empty_like(t)
        out[:, rot.perms[r]] = rot.signs[r] * t
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
            s = norms * (yc / cc)
        elif rule == 1:
            s = norms.copy()
        else:
            s = norms / yc
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


def encode_mse(x, rot, bounds, cents, bits, rule):
    u, norms = unit_directions(x)
    y = rotate_forward(u, rot)
    idx = quantize(y, bounds)
    return pack(idx, bits), scales(rule, norms, y, cents, idx)


def decode_mse(codes, scale_values, rot, cents, bits, n):
    d = rot.d
    idx = unpack(codes, bits, n * d).reshape(n, d)
    t = rotate_inverse(cents[idx], rot)
    s = np.asarray(scale_values, np.float32)[:, None]
    return np.where(s != 0, s * t, np.float32(0)).astype(np.float32)


def sketch_project(res: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """S r for each row r, accumulated over j in order in float32."""
    proj = np.zeros_like(res, dtype=np.float32)
    for j in range(res.shape[1]):
        proj += sketch[:, j][None, :] * res[:, j:j + 1]
    return proj


def encode_prod(x, rot, bounds, cents, bits, sketch):
    u, norms = unit_directions(x)
    y = rotate_forward(u, rot)
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


def decode_prod(codes, qbits, scale_values, gamma_values, rot, cents, bits, sketch, n):
    d = rot.d
    q = np.where(unpack(qbits, 1, n * d).reshape(n, d) == 1, 1.0, -1.0).astype(np.float32)
    corr = np.zeros((n, d), np.float32)
    for i in range(d):
        corr += q[:, i:i + 1] * sketch[i][None, :]
    k = (math.sqrt(math.pi / 2.0) / d * np.asarray(gamma_values, np.float64)).astype(np.float32)
    if bits > 0:
        base = cents[unpack(codes, bits, n * d).reshape(n, d)]
    else:
        base = np.zeros((n, d), np.float32)
    t = rotate_inverse(base + k[:, None] * corr, rot)
    s = np.asarray(scale_values, np.float32)[:, None]
    return np.where(s != 0, s * t, np.float32(0)).astype(np.float32)

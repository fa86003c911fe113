"""The adaptive coding's arithmetic (spec 21.3 and 21.5) in plain numpy, for tests to compare
tqcli/kernels/adaptive.py with bit for bit.  Slow; never used to compress anything."""

from __future__ import annotations

import numpy as np


def cells(x: np.ndarray, model) -> np.ndarray:
    """The cells (int64 (n, k)) of centred binary64 rows x: y_j = sum_t x_t b_jt in binary64,
    t in order, then clamp(floor(y_j / step + 1/2), -K, K) + K."""
    b = model.basis.astype(np.float64)
    n, d = x.shape
    y = np.zeros((n, model.k), np.float64)
    for t in range(d):  # one term at a time, in t order, for every row and component
        y += x[:, t:t + 1] * b[None, :, t]
    halves = model.halves[model.classes.astype(np.int64)]
    q = np.floor(y / model.step + 0.5)
    q = np.clip(q, -halves[None, :], halves[None, :])
    return (q + halves[None, :]).astype(np.int64)


def reconstruct(index: np.ndarray, model, scale=None) -> np.ndarray:
    """float32 rows: s_r (sum_j c_j b_j) in binary64, j in order, rounded once (s_r = 1 when
    the file has no scales; the centre is added afterwards in binary32 by the centre stage)."""
    b = model.basis.astype(np.float64)
    rows = index.shape[0]
    acc = np.zeros((rows, b.shape[1]), np.float64)
    for j in range(model.k):
        cb = model.codebooks[int(model.classes[j])].astype(np.float64)
        acc += cb[index[:, j]][:, None] * b[j][None, :]
    if scale is not None:
        acc = acc * np.asarray(scale, np.float64)[:, None]
    return acc.astype(np.float32)


def encode_payload(x: np.ndarray, model) -> bytes:
    """A chunk's payload (21.4): the stream lengths, then each class's stream of its
    components' cells, row by row (tqcli/codec/reference_rans.py's coder)."""
    from . import reference_rans

    from . import adaptive_scales

    c = np.asarray(x, np.float64)
    index = cells(adaptive_scales.directions(c, model.rho) if model.scales else c, model)
    tail = b""
    if model.scales:  # 21.3: the least-squares scale of the decoded direction
        tail = adaptive_scales.ls_scales(c, reconstruct(index, model)).tobytes()
    streams = []
    for c in range(model.n_classes):
        sym = index[:, model.classes == c].reshape(-1)
        streams.append(reference_rans.encode(sym, model.frequencies[c], model.precision,
                                             model.lanes))
    return np.asarray([len(s) for s in streams], "<u4").tobytes() + b"".join(streams) + tail


def decode_payload(payload, rows: int, model) -> np.ndarray:
    """The float32 rows (before the centre) of a chunk's payload."""
    from . import reference_rans

    lens = np.frombuffer(payload, "<u4", count=model.n_classes)
    at = 4 * model.n_classes
    index = np.empty((rows, model.k), np.int64)
    for c in range(model.n_classes):
        sel = model.classes == c
        sym = reference_rans.decode(bytes(payload[at:at + int(lens[c])]), rows * int(sel.sum()),
                                    model.frequencies[c], model.precision, model.lanes)
        index[:, sel] = sym.reshape(rows, -1)
        at += int(lens[c])
    if model.scales:
        from . import adaptive_scales

        return reconstruct(index, model, adaptive_scales.read(payload, rows))
    return reconstruct(index, model)

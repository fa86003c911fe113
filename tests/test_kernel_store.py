"""The decoder's last step, kernels/decode.py _store_lanes: a group's 8 lanes times their
scales into the output rows, a full group by 8 x 8 transposed blocks (lanes.store_scaled8),
the same bits as one value at a time for every pair of scale and output dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from tqcli.kernels.decode import _store_lanes
from tqcli.kernels.lanes import LANES


def _expected(t, scales, r0, rows, out_dtype, d):
    """What `row[i] = s * t[i * 8 + l]` gives, value by value: float32 times a float32
    scale in binary32, otherwise in binary64, then stored as out's dtype; a zero scale
    gives +0.0."""
    want = np.full((r0 + rows + 3, d), 7.0, out_dtype)  # rows outside stay untouched
    lanes = t.reshape(d, LANES)
    for l in range(rows):
        _one_row(want, lanes, scales, r0, l, out_dtype)
    return want


def _one_row(want, lanes, scales, r0, l, out_dtype):
    with np.errstate(over="ignore", invalid="ignore"):
        s = scales[r0 + l]
        if s == 0:
            want[r0 + l] = 0.0
        elif scales.dtype == np.float32:
            want[r0 + l] = (lanes[:, l] * s).astype(out_dtype)
        else:
            want[r0 + l] = (lanes[:, l].astype(np.float64) * s).astype(out_dtype)


@pytest.mark.parametrize("d", [2, 8, 13, 16, 97, 768])
@pytest.mark.parametrize("sdt,odt", [(np.float32, np.float32), (np.float64, np.float64),
                                     (np.float64, np.float32), (np.float32, np.float64)])
@pytest.mark.parametrize("rows", [LANES, 5])
def test_store_lanes_equals_value_by_value(d, sdt, odt, rows):
    rng = np.random.default_rng(d * 31 + rows)
    t = (rng.standard_normal(d * LANES) * 10.0 ** rng.uniform(-30, 30, d * LANES)).astype(
        np.float32)
    t[(d - 1) * LANES + 1] = np.inf  # lane 1: an infinity ...
    t[(d // 2) * LANES + 2] = np.nan  # ... lane 2: a NaN; lane 4's scale is zero
    r0 = 3
    scales = (rng.standard_normal(r0 + LANES + 2) * 1e5).astype(sdt)
    scales[r0 + 4] = 0.0
    scales[r0 + 6] = -0.0
    scales[r0 + 7] = np.finfo(sdt).max / 3  # products that overflow, or round to odt
    out = np.full((r0 + rows + 3, d), 7.0, odt)
    _store_lanes(t, scales, r0, rows, out)
    want = _expected(t, scales, r0, rows, odt, d)
    assert out.tobytes() == want.tobytes()
    assert not np.signbit(out[r0 + 4]).any()  # a zero scale: exact +0.0
    if rows == LANES:
        assert not np.signbit(out[r0 + 6]).any()  # -0.0 == 0: the same

"""The arrayio package on its own: the .npy rules of arrayio.npy (each refusal and the kind
it carries), the dtype/shape checks at the limits of tqcli.limits, row_runs, the
saturating cast, and what importing the package loads.

End-to-end behaviour (messages, exit codes, pipes, HDF5 files) is tested through the
command line in test_cli.py, test_faults.py and test_hostile_arrays.py.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys

import numpy as np
import numpy.lib.format as npformat
import pytest

from tqcli import arrayio, limits
from tqcli.arrayio import base, hdf5, npy, sinks, sources
from tqcli.errors import InputError


def _parse(data: bytes):
    return npy.read_npy_header(io.BytesIO(data).read)


def _header(text: str, version: int = 1) -> bytes:
    return _raw_header(text.encode("utf-8" if version == 3 else "latin1"), version)


def _raw_header(raw: bytes, version: int) -> bytes:
    if version == 1:
        return npy.NPY_MAGIC + bytes([1, 0]) + struct.pack("<H", len(raw)) + raw
    return npy.NPY_MAGIC + bytes([version, 0]) + struct.pack("<I", len(raw)) + raw


def _refusal(data: bytes) -> InputError:
    with pytest.raises(InputError) as e:
        _parse(data)
    return e.value


# ------------------------------------------------------------------------ reading headers


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("dtype", ["<f2", ">f4", "<f8"])
@pytest.mark.parametrize("fortran", [False, True])
def test_headers_numpy_writes_are_read_as_numpy_reads_them(version, dtype, fortran):
    arr = np.zeros((3, 5, 4), dtype=dtype, order="F" if fortran else "C")
    buf = io.BytesIO()
    npformat.write_array(buf, arr, version=version)
    data = buf.getvalue()
    got_dtype, got_fortran, shape, offset = _parse(data)
    assert (got_dtype, got_fortran, shape) == (np.dtype(dtype), fortran, (3, 5, 4))
    assert offset == len(data) - arr.nbytes


@pytest.mark.parametrize("shape", [(7,), (0, 16), (3, 5), (2, 3, 4, 5), (1 << 40, 2),
                                   (1,) * limits.MAX_NDIM])
@pytest.mark.parametrize("dtype", ["float16", "float32", ">f8"])
def test_written_headers_follow_the_rules_and_numpy_reads_them(shape, dtype):
    head = npy.npy_header_bytes(shape, np.dtype(dtype))
    assert head[:8] == npy.NPY_MAGIC + b"\x01\x00"
    assert len(head) % npy.ALIGNMENT == 0 and head.endswith(b"\n")
    assert struct.unpack("<H", head[8:10])[0] == len(head) - 10
    f = io.BytesIO(head)
    assert npformat.read_magic(f) == (1, 0)
    assert npformat.read_array_header_1_0(f) == (tuple(shape), False, np.dtype(dtype))
    assert f.tell() == len(head)
    assert _parse(head) == (np.dtype(dtype), False, tuple(shape), len(head))


def test_a_written_file_loads_in_numpy_with_its_values():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    buf = io.BytesIO()
    sink = arrayio.NpySink(buf, x.shape, x.dtype)
    sink.write(x.reshape(6, 4)[:4])
    sink.write(x.reshape(6, 4)[4:])
    sink.close()
    y = np.load(io.BytesIO(buf.getvalue()), allow_pickle=False)
    assert y.dtype == np.dtype("<f4") and np.array_equal(y, x)


# ------------------------------------------------------------------------ refusals and kinds


HEAD = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"


@pytest.mark.parametrize("data, kind, words", [
    (b"", "not-npy", "bad magic"),
    (b"\x93NUMPX\x01\x00\x10\x00" + b" " * 16, "not-npy", "bad magic"),
    (_header(HEAD)[:9], "not-npy", "bad magic"),
    (npy.NPY_MAGIC + b"\x04\x00" + b"\x00" * 8, "not-npy", "version 4.0"),
    (npy.NPY_MAGIC + b"\x00\x07" + b"\x00" * 8, "not-npy", "version 0.7"),
    (_header(HEAD, 2)[:11], "truncated", "truncated .npy header"),
    (_header(HEAD)[:-1], "truncated", "truncated .npy header"),
    (npy.NPY_MAGIC + b"\x02\x00" + struct.pack("<I", npy.MAX_NPY_HEADER + 1), "not-npy",
     "implausibly large"),
    (_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3"), "not-npy",
     "malformed"),
    (_header("__import__('os').system('true')"), "not-npy", "malformed"),
    (_header("{'descr': '<f4', 'shape': (2, 3)}"), "not-npy", "unexpected keys"),
    (_header(HEAD[:-1] + "'x': 1}"), "not-npy", "unexpected keys"),
    (_header("[('descr', '<f4')]"), "not-npy", "unexpected keys"),
    (_header(HEAD.replace("False", "0")), "not-npy", "fortran_order"),
    (_header(HEAD.replace("(2, 3)", "[2, 3]")), "not-npy", "(shape)"),
    (_header(HEAD.replace("(2, 3)", "(2, True)")), "not-npy", "(shape)"),
    (_header(HEAD.replace("(2, 3)", "(2, -3)")), "not-npy", "(shape)"),
    (_header(HEAD.replace("(2, 3)", "(2, 3.0)")), "not-npy", "(shape)"),
    (_header(HEAD.replace("'<f4'", "'|O'")), "pickle", "pickled"),
    (_header(HEAD.replace("'<f4'", "'O'")), "pickle", "pickled"),
    (_header(HEAD.replace("'<f4'", "[('a', '<f4')]")), "dtype", "structured"),
    (_header(HEAD.replace("'<f4'", "'<i4'")), "dtype", "not supported"),
    (_header(HEAD.replace("'<f4'", "'<c8'")), "dtype", "not supported"),
    (_header(HEAD.replace("'<f4'", "'<f16'")), "dtype", "not supported"),
    (_header(HEAD.replace("'<f4'", "'<V8'")), "dtype", "not supported"),
    (_header(HEAD.replace("'<f4'", "'zz'")), "dtype", "unknown dtype"),
])
def test_each_refused_header_says_why_and_carries_its_kind(data, kind, words):
    e = _refusal(data)
    assert e.kind == kind and words in e.reason, (e.kind, e.reason)


def test_the_header_text_is_latin1_before_version_3_and_utf8_in_it():
    latin1 = HEAD.encode() + b" # \xe9\n"  # a comment, which literal_eval skips
    utf8 = HEAD.encode() + " # \u00e9\n".encode("utf-8")
    for version in (1, 2):
        assert _parse(_raw_header(latin1, version))[:3] == (np.dtype("<f4"), False, (2, 3))
    assert _parse(_raw_header(utf8, 3))[:3] == (np.dtype("<f4"), False, (2, 3))
    e = _refusal(_raw_header(latin1, 3))  # a lone 0xe9 is not UTF-8
    assert e.kind == "not-npy" and e.reason == "malformed .npy header"


def test_the_largest_plausible_header_is_read():
    text = HEAD + " " * (npy.MAX_NPY_HEADER - len(HEAD) - 1) + "\n"
    assert _parse(_header(text, 2))[3] == 12 + npy.MAX_NPY_HEADER


# ------------------------------------------------------------------------ dtype and shape checks


def test_shape_checks_sit_exactly_on_the_limits():
    ok = [(limits.MIN_DIM,), (limits.MAX_DIM,), (1,) * (limits.MAX_NDIM - 1) + (4,),
          (limits.MAX_VECTORS, 2), (1 << 24, 1 << 24, 2), (0, 8)]
    for shape in ok:
        base.check_shape(shape)
    bad = [((), "0-dimensional"), ((1,) * limits.MAX_NDIM + (4,), "rank"),
           ((5, limits.MIN_DIM - 1), "need at least 2"),
           ((5, limits.MAX_DIM + 1), f"the limit is {limits.MAX_DIM}"),
           ((limits.MAX_VECTORS + 1, 2), "vectors is above"),
           ((1 << 24, (1 << 24) + 1, 2), "vectors is above")]
    for shape, words in bad:
        with pytest.raises(InputError) as e:
            base.check_shape(shape)
        assert e.value.kind == "shape" and words in e.value.reason, shape


def test_dtype_checks_accept_the_three_floats_in_either_byte_order():
    for name in ("float16", "float32", "float64"):
        for order in "<>=":
            base.check_dtype(np.dtype(name).newbyteorder(order))
    for dt in (np.int8, np.bool_, np.complex64, np.longdouble, np.dtype("V4"),
               np.dtype([("a", "f4")]), np.dtype(("f4", (2,))), np.dtype("M8[s]")):
        if np.dtype(dt) == np.float64:
            continue  # longdouble is float64 on some platforms
        with pytest.raises(InputError) as e:
            base.check_dtype(dt)
        assert e.value.kind == "dtype", dt


def test_a_file_shorter_than_its_header_declares_is_truncated(tmp_path):
    x = np.ones((4, 8), np.float32)
    path = tmp_path / "short.npy"
    np.save(path, x)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    with pytest.raises(InputError) as e:
        arrayio.open_input(str(path))
    assert e.value.kind == "truncated" and "declares 128 data bytes" in e.value.reason
    assert e.value.source == str(path)
    path.write_bytes(data + b"\x00")
    with pytest.raises(InputError) as e:
        arrayio.open_input(str(path))
    assert e.value.kind == "input" and "but the file has 129" in e.value.reason


def test_a_pipe_that_ends_early_is_truncated():
    x = np.ones((4, 8), np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    src = sources.NpyStreamSource(io.BytesIO(buf.getvalue()[:-4]), "-")
    with pytest.raises(InputError) as e:
        list(src.blocks(3))
    assert e.value.kind == "truncated"


def test_a_file_that_is_neither_npy_nor_hdf5(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(b"PK\x03\x04 not an array")
    with pytest.raises(InputError) as e:
        arrayio.open_input(str(path))
    assert e.value.kind == "not-npy" and e.value.reason.startswith("not an array tq reads")


# ------------------------------------------------------------------------ helpers


@pytest.mark.parametrize("shape", [(6,), (5, 3), (4, 5, 3), (2, 3, 4, 3)])
def test_row_runs_cover_each_row_once_in_order(shape):
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    n = x.size // shape[-1]
    rows = x.reshape(n, shape[-1])
    for start in range(n):
        for count in range(1, n - start + 1):
            out = np.full((count, shape[-1]), np.nan)
            last = 0
            for sel, lo, hi in arrayio.row_runs(shape, start, count):
                assert lo == last and hi > lo
                out[lo:hi] = x[sel].reshape(hi - lo, shape[-1])
                last = hi
            assert last == count
            assert np.array_equal(out, rows[start:start + count])


def test_saturating_cast_keeps_overshoot_finite_only_when_narrowing():
    big = np.array([[7e4, -7e4, 1.0]], dtype=np.float32)
    half = sinks.saturating_cast(big, np.float16)
    assert half.dtype == np.float16 and half.flags.c_contiguous
    assert np.array_equal(half[0], np.array([65504, -65504, 1], np.float16))
    wide = sinks.saturating_cast(big, np.float64)
    assert np.array_equal(wide, big.astype(np.float64))
    huge = np.array([[1e300, 2.0]])
    assert np.array_equal(sinks.saturating_cast(huge, ">f4"),
                          np.array([[np.finfo(np.float32).max, 2.0]], ">f4"))


def test_hdf5_names_and_specs():
    assert hdf5.is_hdf5_name("a.H5") and hdf5.is_hdf5_name("b.hdf5")
    assert not hdf5.is_hdf5_name("a.h5.npy")
    assert hdf5.split_h5_spec("/no/such/x.h5:/g/ds") == ("/no/such/x.h5", "/g/ds")
    assert hdf5.split_h5_spec("/no/such/x.HDF5:") == ("/no/such/x.HDF5", None)
    assert hdf5.split_h5_spec("/no/such/x.npy") == ("/no/such/x.npy", None)


# ------------------------------------------------------------------------ the package


def test_the_package_reexports_the_names_tq_uses():
    for name in arrayio.__all__:
        assert getattr(arrayio, name) is not None, name
    assert arrayio.open_input is sources.open_input
    assert arrayio.H5Sink is hdf5.H5Sink and arrayio.H5Sink.broken is hdf5.H5Sink.broken
    assert arrayio.npy_header_bytes is npy.npy_header_bytes


def test_reading_npy_imports_neither_h5py_nor_the_container():
    code = ("import sys, io, numpy as np; from tqcli import arrayio; "
            "b = io.BytesIO(); np.save(b, np.ones((3, 4), np.float32)); b.seek(0); "
            "s = arrayio.NpyStreamSource(b, '-'); list(s.blocks(2)); "
            "print(sorted(m for m in ('h5py', 'tqcli.format.container', 'tqcli.codec.state', 'numba') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

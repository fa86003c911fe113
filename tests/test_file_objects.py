"""The file objects as numpy users expect them (h5py's model, issue 21 item 7).

TqFile: shape, dtype, len, basic indexing over the original shape equal to
decompress(blob)[key] (values, shape, dtype, scalar or array), reading only the chunks
needed.  The collection: a read-only Mapping of names to lazily read members.
"""

import io

import numpy as np
import pytest

import tqcli
from tqcli.format.container import ContainerReader
from tqcli.arrayio.lazyarray import split_index
from tqcli.library.collection_file import CollectionFile, Member

rng = np.random.default_rng(2121)

SHAPES = {
    "rank1": ((40,), 8),
    "rank2": ((203, 24), 16),          # 13 chunks, the last one short
    "rank3": ((5, 7, 16), 8),
    "rank5": ((2, 3, 4, 5, 8), 16),
}


def _blob(shape, chunk_rows, **kw):
    x = rng.standard_normal(shape).astype(kw.pop("dtype", np.float32))
    return tqcli.compress(x, bits=kw.pop("bits", 3), chunk_rows=chunk_rows, **kw)


BLOBS = {name: _blob(shape, cr) for name, (shape, cr) in SHAPES.items()}

KEYS = {
    "rank1": [0, -1, 39, slice(None), slice(None, None, -1), slice(5, 5), slice(-3, None),
              slice(30, 2, -4), Ellipsis, (None, Ellipsis), (Ellipsis, None, 3), (), np.int64(-2)],
    "rank2": [0, -1, 202, -203, slice(None), slice(15, 17), slice(190, None),
              slice(None, None, -1), slice(None, None, -5), slice(200, 3, -17), slice(7, 7),
              slice(-1, -10, 1), (Ellipsis, 3), (5, Ellipsis), (slice(10, 40, 3), slice(2, 20, 4)),
              (-1, -1), (None, slice(100, 110), None, 0), (Ellipsis, None),
              (slice(-16, None), slice(None, None, -1)), np.int32(17)],
    "rank3": [-1, (0, 0), (-1, -1, -1), (slice(None, None, -2), 3), (Ellipsis, 2, slice(1, 9)),
              (1, Ellipsis, 5), (slice(1, 4), None, slice(6, 0, -3)), (slice(3, 3), 0),
              (slice(None), slice(None), slice(None)), (2, slice(None, None, -1), None)],
    "rank5": [(1, 2), (-1, Ellipsis, -1), (Ellipsis, slice(1, 4), slice(None)),
              (slice(None, None, -1), 1, Ellipsis, 2, slice(None, None, -3)),
              (0, slice(None), None, 3, slice(4, 1, -1)), (1, 2, 3, 4), (1, 2, 3, 4, 7),
              (slice(0, 0), Ellipsis), (Ellipsis, 2, 3, 4), (None, 1, Ellipsis, None)],
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_getitem_equals_decompress_then_index(name):
    blob = BLOBS[name]
    y = tqcli.decompress(blob)
    with tqcli.open(blob) as f:
        assert f.shape == y.shape and f.dtype == y.dtype and f.ndim == y.ndim
        assert f.size == y.size and len(f) == len(y)
        for key in KEYS[name]:
            got, want = f[key], y[key]
            assert type(got) is type(want), key
            assert np.shape(got) == np.shape(want) and got.dtype == want.dtype, key
            assert np.array_equal(got, want), key
        assert np.array_equal(np.asarray(f), y)
        assert np.asarray(f, dtype=np.float64).dtype == np.float64
        assert all(np.array_equal(a, b) for a, b in zip(f, y))  # iteration, first axis


@pytest.mark.parametrize("dtype", ["float16", "float64", "bfloat16"])
def test_dtype_is_the_original_one(dtype):
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = ml_dtypes.bfloat16
    blob = _blob((30, 3, 16), 8, dtype=dtype)
    y = tqcli.decompress(blob)
    with tqcli.open(blob) as f:
        assert f.dtype == y.dtype
        for key in [(-1, 1), (slice(None, None, -2),), (2, 0, 5)]:
            assert f[key].dtype == y[key].dtype and np.array_equal(f[key], y[key])


def test_a_stream_reads_once_and_gives_the_same():
    blob = BLOBS["rank3"]

    class Pipe(io.BytesIO):
        def seekable(self):
            return False

    with tqcli.open(Pipe(blob)) as f:
        assert f.shape == (5, 7, 16)
        got = f[-2, ::-3]
    assert np.array_equal(got, tqcli.decompress(blob)[-2, ::-3])


@pytest.mark.parametrize("key,err", [
    (203, IndexError), (-204, IndexError), ((0, 24), IndexError), ((0, 0, 0), IndexError),
    ((Ellipsis, 0, Ellipsis), IndexError), (1.5, IndexError), ("a", IndexError),
    ([0, 1], TypeError), (np.array([0, 2]), TypeError), (True, TypeError),
    (np.zeros(203, bool), TypeError), ((slice(0, 2), [1]), TypeError),
    (slice(None, None, 0), ValueError), (slice(0.5, 2), TypeError),
])
def test_what_numpy_refuses_is_refused(key, err):
    y = tqcli.decompress(BLOBS["rank2"])
    with tqcli.open(BLOBS["rank2"]) as f:
        with pytest.raises(err):
            f[key]
    if err is not TypeError or isinstance(key, (float, str)):
        with pytest.raises(err):  # numpy says the same
            y[key]


def test_out_of_range_index_error_says_what_numpy_says():
    y = tqcli.decompress(BLOBS["rank3"])
    with tqcli.open(BLOBS["rank3"]) as f:
        for key in [(5,), (0, -8), (0, 0, 16)]:
            with pytest.raises(IndexError) as ours:
                f[key]
            with pytest.raises(IndexError) as numpys:
                y[key]
            assert str(ours.value) == str(numpys.value)


def _chunks_read(f, key):
    """The chunks f[key] reads, counted at the container reader."""
    seen = []
    inner = f._reader.read_chunk

    def spy(i, *a, **kw):
        seen.append(i)
        return inner(i, *a, **kw)

    f._reader.read_chunk = spy
    try:
        f[key]
    finally:
        del f._reader.read_chunk
    return seen


def test_only_the_chunks_needed_are_read():
    with tqcli.open(BLOBS["rank2"]) as f:  # 203 rows in chunks of 16
        assert _chunks_read(f, -1) == [12]
        assert _chunks_read(f, 0) == [0]
        assert _chunks_read(f, slice(15, 17)) == [0, 1]  # across a chunk border
        assert _chunks_read(f, slice(40, 30, -1)) == [1, 2]
        assert _chunks_read(f, (slice(7, 7), 3)) == []
        assert _chunks_read(f, (Ellipsis, 5)) == list(range(13))
        assert _chunks_read(f, slice(None, None, 64)) == [0, 4, 8, 12]
    with tqcli.open(BLOBS["rank5"]) as f:  # (2, 3, 4, 5) rows = 120, chunks of 16
        assert _chunks_read(f, (1, 2, 3)) == [(1 * 60 + 2 * 20 + 3 * 5) // 16]
        assert _chunks_read(f, (0, 0)) == [0, 1]


def test_only_the_bytes_of_the_chunks_needed_are_read():
    blob = BLOBS["rank2"]

    class Counting(io.BytesIO):
        n = 0

        def read(self, n=-1):
            data = super().read(n)
            self.n += len(data)
            return data

        def readinto(self, b):
            k = super().readinto(b)
            self.n += k
            return k

    src = Counting(blob)
    with tqcli.open(src) as f:
        src.n = 0
        f[100]
        one = src.n
        src.n = 0
        f[:]
        every = src.n
        payload = f.payload_bytes
    assert one < 2 * every / 13 and every >= payload


def test_split_index_gives_runs_and_an_index_on_what_was_read():
    assert split_index((Ellipsis, 3), (4, 5, 8)) == ((slice(0, 4, 1), slice(0, 5, 1)),
                                                     (slice(None), slice(None), 3))
    assert split_index(slice(None, None, -2), (5, 8)) == ((slice(0, 5, 2),),
                                                          (slice(None, None, -1), slice(None)))
    assert split_index((None, -1), (5, 8)) == ((4,), (None, slice(None)))


# ---------------------------------------------------------------------- collections


def _collection(**kw):
    arrays = {
        "layers/0/key": rng.standard_normal((2, 3, 40, 32)).astype(np.float32),
        "layers/0/value": rng.standard_normal((2, 3, 40, 32)).astype(np.float16),
        "ids": np.arange(50, dtype=np.int32),
        "mask": rng.random((6, 7)) > 0.5,
        "scalar": np.array(2.5),
        "emb": rng.standard_normal((100, 64)).astype(np.float32),
    }
    out = io.BytesIO()
    tqcli.compress_collection(arrays, out, bits=4, chunk_rows=16, **kw)
    return out.getvalue(), list(arrays)


@pytest.mark.parametrize("vector_size", [None, 16])
def test_a_collection_is_a_mapping_of_lazy_members(vector_size):
    from collections.abc import Mapping

    blob, names = _collection(vector_size=vector_size)
    with tqcli.open_collection(blob) as c:
        assert isinstance(c, Mapping) and bool(c)
        assert list(c) == names == c.names == list(c.keys()) and len(c) == len(names)
        assert "ids" in c and "nope" not in c and 3 not in c
        assert [m.name for m in c.values()] == names
        for name in names:
            m, full = c[name], c.read(name)
            assert isinstance(m, Member) and m.name == name
            assert m.shape == full.shape and m.dtype == full.dtype and m.ndim == full.ndim
            assert np.array_equal(np.asarray(m), full)
            if full.ndim:
                assert len(m) == len(full)
        assert c["layers/0/key"].kind == "tqz" and c["ids"].kind == "raw"
        key = c.read("layers/0/key")
        for k in [(1, -1), (Ellipsis, slice(3, 30, 5)), -1, (0, 2, 39, 31),
                  (slice(None, None, -1), None, 2, slice(None, None, -7)), (0, slice(5, 5))]:
            got, want = c["layers/0/key"][k], key[k]
            assert type(got) is type(want) and np.array_equal(got, want), k
        assert np.array_equal(c["ids"][::-3], np.arange(50, dtype=np.int32)[::-3])
        assert c["scalar"][()] == 2.5 and c["mask"][2, -1] == c.read("mask")[2, -1]
        # items() keeps its documented meaning: (record, array) in file order
        assert [(r["name"], a.shape) for r, a in c.items()] == [(n, c.read(n).shape)
                                                                for n in names]


def test_an_unknown_member_is_a_key_error_naming_it():
    blob, _ = _collection()
    with tqcli.open_collection(blob) as c:
        with pytest.raises(KeyError, match="no member 'layers/9/key'"):
            c["layers/9/key"]
        assert c.get("layers/9/key") is None
        with pytest.raises(tqcli.TqError, match="no member"):  # read() as before
            c.read("layers/9/key")


def test_each_name_gets_its_own_member_when_names_contain_one_another():
    """c[name] and c.read(name) are the member of exactly that name, also when another
    member's name (stored before it) contains it; a folder's name is no member."""
    names = ["layers/10/key", "layers/1/key", "key", "k"]
    arrays = {n: np.full((8, 16), i, dtype=np.int32) for i, n in enumerate(names)}
    arrays["emb"] = rng.standard_normal((32, 16)).astype(np.float32)
    out = io.BytesIO()
    tqcli.compress_collection(arrays, out, bits=4)
    with tqcli.open_collection(out.getvalue()) as c:
        for i, name in enumerate(names):
            assert c[name].name == name and c[name].record["name"] == name
            assert np.array_equal(c[name][...], arrays[name]), name
            assert np.array_equal(c.read(name), arrays[name]), name
        assert c["emb"].shape == (32, 16)
        for missing in ("layers", "layers/1", "e", "ke"):
            assert missing not in c and c.get(missing) is None
            with pytest.raises(KeyError):
                c[missing]


def test_opening_and_indexing_the_mapping_decodes_nothing(monkeypatch):
    blob, names = _collection()
    decoded = []
    inner = ContainerReader.read_chunk

    def spy(self, i, *a, **kw):
        decoded.append(i)
        return inner(self, i, *a, **kw)

    monkeypatch.setattr(ContainerReader, "read_chunk", spy)
    with tqcli.open_collection(blob) as c:
        members = [c[n] for n in c]
        _ = [(m.shape, m.dtype, len(c)) for m in members]
        assert decoded == []
        c["emb"][-1]  # 100 rows in chunks of 16: only the last chunk
        assert decoded == [6]


def test_a_member_reads_only_its_own_bytes():
    blob, _ = _collection()
    touched = []

    class Counting(io.BytesIO):
        def readinto(self, b):
            start = self.tell()
            k = super().readinto(b)
            touched.append((start, start + k))
            return k

        def read(self, n=-1):
            start = self.tell()
            data = super().read(n)
            touched.append((start, start + len(data)))
            return data

    with tqcli.open_collection(Counting(blob)) as c:
        for name in ("ids", "emb"):
            touched.clear()
            c[name][3]
            e = c._reader.entry(name)
            lo, hi = e["offset"], e["offset"] + e["record"] + e["length"]
            assert touched and all(lo <= a and b <= hi for a, b in touched), name


def test_a_streamed_collection_is_read_with_items():
    blob, names = _collection()

    class Pipe(io.BytesIO):
        def seekable(self):
            return False

    with tqcli.open_collection(Pipe(blob)) as c:
        assert isinstance(c, CollectionFile) and bool(c)
        with pytest.raises(tqcli.TqError, match="items"):
            c["ids"]
        assert [r["name"] for r, _ in c.items()] == names

"""Two threads that each read, code and write a chunk of their own (arrayio.pipeline
run_ordered; TqFile.decode_runs; the encoder's _encode_in_turns): the same bytes as one
chunk at a time, in order, and failures that end the run where one chunk at a time would."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

import tqcli
from tqcli import kernels
from tqcli.arrayio import sources
from tqcli.arrayio.pipeline import run_ordered
from tqcli.codec.state import Codec
from tqcli.errors import FormatError
from tqcli.format import memory


def _ordered(n, workers, fail_at=(), take_fails_at=None, emit_fails_at=None, slow=()):
    """Run items 0..n-1 through run_ordered; returns (emitted, exception or None, taken)."""
    emitted, taken = [], []
    state_ids = set()
    counter = iter(range(n))

    def take(state):
        state_ids.add(id(state))
        i = next(counter, None)
        if i is not None and i == take_fails_at:
            raise KeyError(i)
        if i is not None:
            taken.append(i)
        return i

    def work(i, state):
        time.sleep(0.02 if i in slow else 0.001)
        if i in fail_at:
            raise ValueError(i)
        return i, threading.current_thread().name

    def emit(result):
        if result[0] == emit_fails_at:
            raise OSError(result[0])
        emitted.append(result)

    try:
        run_ordered(take, work, emit, workers)
    except BaseException as e:  # noqa: BLE001 - the test looks at what came out
        return emitted, e, taken, state_ids
    return emitted, None, taken, state_ids


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_items_are_emitted_in_order_whatever_finishes_first(workers):
    # even items are slow: with two threads the odd ones finish first and must wait
    emitted, error, _, states = _ordered(40, workers, slow=set(range(0, 40, 2)))
    assert error is None
    assert [i for i, _ in emitted] == list(range(40))
    assert len(states) == workers  # a state of its own per thread
    if workers > 1:  # the work really ran on more than one thread
        assert len({name for _, name in emitted}) > 1


def test_the_earliest_failure_is_raised_and_nothing_after_it_is_emitted():
    # item 7 fails at once, item 5 only after a while: 5's error is the one raised, and
    # 0..4 are emitted, as one item at a time would have done
    emitted, error, _, _ = _ordered(20, 2, fail_at={5, 7}, slow={5})
    assert isinstance(error, ValueError) and error.args == (5,)
    assert [i for i, _ in emitted] == [0, 1, 2, 3, 4]


def test_a_failed_take_ends_the_run_after_the_items_before_it():
    emitted, error, taken, _ = _ordered(20, 2, take_fails_at=6, slow={5})
    assert isinstance(error, KeyError) and error.args == (6,)
    assert [i for i, _ in emitted] == [0, 1, 2, 3, 4, 5]
    assert taken == [0, 1, 2, 3, 4, 5]  # nothing taken after the failure


def test_a_failed_emit_stops_every_later_emit():
    emitted, error, _, _ = _ordered(20, 3, emit_fails_at=3)
    assert isinstance(error, OSError) and error.args == (3,)
    assert [i for i, _ in emitted] == [0, 1, 2]


def test_an_empty_run_emits_nothing():
    emitted, error, _, _ = _ordered(0, 2)
    assert error is None and emitted == []


# ---------------------------------------------------------------------- decoding


@pytest.fixture(scope="module")
def blob():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((1000, 48)) * np.linspace(0.2, 3, 48)).astype(np.float32)
    return x, tqcli.compress(x, bits=3, chunk_rows=64)  # 16 chunks, the last of 40 rows


def _serial(f, starts, stops):
    return [b.copy() for b in f.iter_runs(starts, stops)]


@pytest.mark.parametrize("runs", [
    ([0], [1000]),                      # everything
    ([70], [75]),                       # inside one chunk
    ([10, 100, 130, 990], [20, 128, 700, 1000]),  # several runs, two in one chunk
    ([960], [1000]),                    # the short last chunk only
])
@pytest.mark.parametrize("pipelines", [1, 2, 3])
def test_decode_runs_equals_iter_runs(blob, runs, pipelines):
    _, data = blob
    starts, stops = (np.array(r, np.int64) for r in runs)
    with tqcli.open(data) as f:
        want = _serial(f, starts, stops)
    got, calls = [], []
    with tqcli.open(data) as f:
        f.decode_runs(starts, stops, lambda b: got.append(b.copy()), pipelines=pipelines,
                      progress=lambda done, total: calls.append((done, total)))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    total = int((stops - starts).sum())
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [c for c, _ in calls] == sorted(c for c, _ in calls)


class _Pipe(io.RawIOBase):
    """A stream that cannot seek (as a pipe)."""

    def __init__(self, data):
        self.inner = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, b):
        return self.inner.readinto(b)


def test_decode_runs_reads_a_stream_in_order_and_checks_its_end(blob):
    x, data = blob
    got = []
    with tqcli.open(io.BufferedReader(_Pipe(data))) as f:
        assert not f.seekable
        f.decode_runs(np.array([100]), np.array([300]), lambda b: got.append(b.copy()),
                      pipelines=2)
    assert np.concatenate(got).tobytes() == tqcli.decompress(data, rows=(100, 300)).tobytes()
    # a stream with bytes after its footer: the rows before are emitted, then the refusal
    got.clear()
    with tqcli.open(io.BufferedReader(_Pipe(data + b"x"))) as f:
        with pytest.raises(FormatError, match="trailing"):
            f.decode_runs(np.array([0]), np.array([1000]), lambda b: got.append(b.copy()),
                          pipelines=2)
    assert sum(b.shape[0] for b in got) == 1000


def _corrupt(data, chunks):
    """data with one payload byte of each of `chunks` flipped (CRC mismatch)."""
    with tqcli.open(data) as f:
        h = f.header
    raw = bytearray(data)
    for i in chunks:
        raw[h.chunk_offset(i) + 3] ^= 0xFF
    return bytes(raw)


@pytest.mark.parametrize("bad", [[5], [5, 6], [5, 9], [0], [15]])
def test_a_corrupt_chunk_ends_the_decode_where_one_at_a_time_would(blob, bad):
    _, data = blob
    raw = _corrupt(data, bad)
    got = []
    with tqcli.open(raw) as f:
        with pytest.raises(FormatError) as e:
            f.decode_runs(np.array([0]), np.array([1000]), lambda b: got.append(b.copy()),
                          pipelines=2)
    assert e.value.chunk == bad[0]  # the earliest bad chunk is named
    assert sum(b.shape[0] for b in got) == 64 * bad[0]  # every chunk before it written


def test_decompress_file_in_two_pipelines_matches_one(blob, tmp_path, monkeypatch):
    _, data = blob
    (tmp_path / "x.tqz").write_bytes(data)
    for dtype in (None, "float16", "float64"):
        outs = []
        for threads in (1, 2):
            monkeypatch.setattr(kernels, "thread_count", lambda t=threads: t)
            assert memory.decode_pipelines(tqcli.read_header(data), kernels.thread_count()) \
                == threads
            out = tmp_path / f"y{threads}.npy"
            tqcli.decompress_file(tmp_path / "x.tqz", out, force=True, dtype=dtype,
                                  select="5:900")
            outs.append(out.read_bytes())
        assert outs[0] == outs[1]


# ---------------------------------------------------------------------- encoding


class _Refilled(sources.InMemorySource):
    """A source that fills one buffer again for every block (as a pipe's reader does)."""

    fresh_blocks = False

    def blocks(self, rows):
        buf = None
        for block in super().blocks(rows):
            if buf is None:
                buf = np.empty_like(block)
            view = buf[:block.shape[0]]
            view[...] = block
            yield view
            view[...] = np.nan  # what a careless holder of the old block would now see


@pytest.mark.parametrize("center", [False, True])
def test_compress_in_two_pipelines_matches_one(monkeypatch, center):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((3000, 40)) + 0.5).astype(np.float32)
    # batches of 4 chunks of 80 rows: 2 per thread, 10 batches
    monkeypatch.setattr(memory, "BATCH_INPUT_BYTES", 4 * 80 * 40 * 4)
    encode = Codec.encode_chunks

    def slow(self, x, first_row=0):  # the other thread reads on meanwhile
        time.sleep(0.01)
        return encode(self, x, first_row)

    monkeypatch.setattr(Codec, "encode_chunks", slow)
    blobs = []
    for threads, source in ((1, tqcli.arrayio.from_array(x)), (2, _Refilled(x, "r")),
                            (2, tqcli.arrayio.from_array(x))):
        monkeypatch.setattr(kernels, "thread_count", lambda t=threads: t)
        buf = io.BytesIO()
        tqcli.compress_to(source, buf, bits=4, chunk_rows=80, center=center)
        blobs.append(buf.getvalue())
    assert memory.encode_pipelines(tqcli.read_header(blobs[0]), 2) == 2
    assert blobs[1] == blobs[0] and blobs[2] == blobs[0]


def test_a_bad_row_is_named_as_one_batch_at_a_time_names_it(monkeypatch):
    x = np.ones((3000, 40), np.float32)
    x[1234, 7] = np.nan
    x[2500, 1] = np.inf
    monkeypatch.setattr(memory, "BATCH_INPUT_BYTES", 4 * 80 * 40 * 4)
    monkeypatch.setattr(kernels, "thread_count", lambda: 2)
    with pytest.raises(tqcli.errors.InputError, match="row 1234"):
        tqcli.compress(x, bits=4, chunk_rows=80)


# ---------------------------------------------------------------------- the finiteness scan


def _payload(h, rows, code_bytes, scale):
    from tqcli.codec.codings import packed

    ncode, nsign, nfloat = packed.PACKED.section_sizes(h, rows)
    scales = np.full(rows, scale, np.dtype(h.scale_dtype).newbyteorder("<"))
    return bytes(code_bytes[:ncode]) + bytes(nsign) + scales.tobytes()


@pytest.mark.parametrize("d,bits", [(48, 1), (48, 8), (768, 4), (1000, 3), (130, 2)])
def test_the_proven_bound_holds_at_its_largest_scale(d, bits):
    """Scales as large as the bound lets through without a scan, codes random or all at
    the largest centroid: every decoded value is finite and within the bound."""
    from tqcli.format.header import make_header
    from tqcli.codec.options import EncodeOptions

    h = make_header(d, EncodeOptions(bits=bits, chunk_rows=64), scale_dtype="float32",
                    source_dtype="float32", shape=(64, d))
    codec = Codec(h)
    top = float(np.abs(codec.centroids).max())
    scale = np.float32(codec._finite_top / (2.0 * np.sqrt(d) * top) * 0.999)
    rng = np.random.default_rng(d + bits)
    ncode = -(-64 * d * h.code_bits // 8)
    for codes in (rng.integers(0, 256, ncode, dtype=np.uint8), np.full(ncode, 255, np.uint8)):
        payload = _payload(h, 64, codes, scale)
        bound = h.payload_coding.decoded_bound(codec, payload, 64)
        assert bound <= codec._finite_top  # so decode skips its scan here
        out = codec.decode(payload, 64)
        assert np.isfinite(out).all() and np.abs(out).max() <= bound


def test_the_scan_runs_only_where_no_bound_is_proven(monkeypatch):
    from tqcli.codec import state

    calls = []
    scan = state._all_finite
    monkeypatch.setattr(state, "_all_finite", lambda out: calls.append(1) or scan(out))
    x = np.random.default_rng(1).standard_normal((200, 64)).astype(np.float32) + 1
    for options, scanned in ((dict(bits=4), False), (dict(bits=4, center=True), True),
                             (dict(bits=4, mode="prod"), True)):
        calls.clear()
        y = tqcli.decompress(tqcli.compress(x, **options))
        assert np.isfinite(y).all()
        assert bool(calls) == scanned, options
    # a crafted scale near float32's top: no bound, so the scan runs (whether it then
    # refuses depends on the codes; tests/test_verify_parity.py has files it refuses)
    from tqcli.format.header import make_header
    from tqcli.codec.options import EncodeOptions

    h = make_header(64, EncodeOptions(bits=4, chunk_rows=64), scale_dtype="float32",
                    source_dtype="float32", shape=(64, 64))
    codec = Codec(h)
    calls.clear()
    payload = _payload(h, 64, np.full(64 * 64 // 2, 255, np.uint8), 3e38)
    assert h.payload_coding.decoded_bound(codec, payload, 64) > codec._finite_top
    codec.decode(payload, 64)
    assert calls

"""tq inside zarr and Dask (the zarr extra): the v3 codec `tq.turboquant`, the numcodecs codec
`tq`, the CLI bridges to zarr stores, and both codecs on Dask workers.

What is asserted: chunks decode to exactly what tqcli.decompress gives for the same rows
(plain chunks, edge chunks, inside sharding_indexed, zarr v2, Dask threads and processes);
edge-chunk padding costs no bytes; stores open in a fresh interpreter that only imports
zarr (entry points); the refusals (split vector axis, integer dtype, NaN, bad
configuration) say what is wrong and how to fix it; both codecs pickle.

Cheap on purpose (CI budget): float32 arrays of d = 64 with default options (the kernel
specialisations the rest of the suite already compiles), one LocalCluster shared by the
distributed tests, two subprocesses in all, the CLI through click's CliRunner.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed: pip install "
                           "'.[zarr]' (.ci/run installs it)")
numcodecs = pytest.importorskip("numcodecs", reason="the zarr extra is not installed: pip "
                                "install '.[zarr]' (.ci/run installs it)")

import tqcli  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import gaussian  # noqa: E402
from tqcli.integrations.chunkcodec import ChunkError  # noqa: E402
from tqcli.cli import main  # noqa: E402
from tqcli.integrations.numcodecs_codec import TurboQuant  # noqa: E402
from tqcli.integrations.zarr_codecs import TurboQuantCodec  # noqa: E402

ROOT = Path(__file__).parents[1]
N, D = 300, 64
X = gaussian(N, D, seed=7)


def tq_rows(rows: np.ndarray, **options) -> np.ndarray:
    """What tqcli.decompress gives for these rows compressed on their own."""
    return tqcli.decompress(tqcli.compress(rows, **options))


def per_chunk(x: np.ndarray, rows: int, **options) -> np.ndarray:
    return np.concatenate([tq_rows(x[a:a + rows], **options) for a in range(0, len(x), rows)])


def v3_array(path, x=X, chunks=(128, D), **kw):
    kw.setdefault("serializer", TurboQuantCodec())
    kw.setdefault("compressors", None)
    z = zarr.create_array(store=str(path), shape=x.shape, chunks=chunks, dtype=x.dtype, **kw)
    z[...] = x
    return z


# ---------------------------------------------------------------------------- zarr v3


def test_v3_round_trip_equals_decompress_and_padding_costs_nothing(tmp_path):
    v3_array(tmp_path / "a.zarr")
    z = zarr.open_array(str(tmp_path / "a.zarr"))
    y = z[:]
    assert y.dtype == np.float32 and y.shape == X.shape
    assert np.array_equal(y, per_chunk(X, 128))
    # a partial read decodes the chunks it touches, to the same values
    assert np.array_equal(z[100:140, 5:9], per_chunk(X, 128)[100:140, 5:9])
    # the edge chunk (44 real rows, 84 rows of fill value) is exactly the .tqz of 44 rows,
    # and each chunk is a complete .tqz stream
    edge = (tmp_path / "a.zarr" / "c" / "2" / "0").read_bytes()
    assert edge == tqcli.compress(X[256:])
    assert tqcli.read_header(edge).shape == (44, D)
    assert tqcli.read_header((tmp_path / "a.zarr" / "c" / "0" / "0").read_bytes()).shape \
        == (128, D)
    meta = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    (codec,) = meta["codecs"]
    assert codec == {"name": "tq.turboquant", "configuration": {
        "bits": 4, "mode": "mse", "seed": 0, "rounds": 3, "scale_rule": "ls",
        "scale_dtype": "auto", "rotation": "tiled", "coding": "packed", "center": False,
        "chunk_rows": None}}


def test_v3_options_center_nan_fill_and_rank3(tmp_path):
    # options reach the encoder; center uses the chunk's real rows, not its padding
    v3_array(tmp_path / "c.zarr", serializer=TurboQuantCodec(bits=3, seed=5, center=True))
    y = zarr.open_array(str(tmp_path / "c.zarr"))[:]
    assert np.array_equal(y, per_chunk(X, 128, bits=3, seed=5, center=True))
    assert tqcli.read_header((tmp_path / "c.zarr" / "c" / "2" / "0").read_bytes()).centered
    # a NaN fill value pads edge chunks with NaN rows: they are left out, not refused
    v3_array(tmp_path / "n.zarr", fill_value=float("nan"))
    assert np.array_equal(zarr.open_array(str(tmp_path / "n.zarr"))[:], per_chunk(X, 128))
    # rank 3, padded along two axes (padding rows between real ones are just rows)
    x3 = gaussian(3 * 70, D, seed=8).reshape(3, 70, D)
    v3_array(tmp_path / "r.zarr", x=x3, chunks=(2, 64, D))
    y3 = zarr.open_array(str(tmp_path / "r.zarr"))[:]
    assert np.array_equal(y3, tq_rows(x3.reshape(-1, D)).reshape(x3.shape))


def test_v3_inside_sharding(tmp_path):
    path = str(tmp_path / "s.zarr")
    zarr.create_array(store=path, shape=X.shape, chunks=(64, D), shards=(256, D),
                      dtype="float32", serializer=TurboQuantCodec(),
                      compressors=None)[...] = X
    z = zarr.open_array(path)
    assert sorted(os.listdir(tmp_path / "s.zarr" / "c")) == ["0", "1"]  # two shards
    want = per_chunk(X, 64)
    assert np.array_equal(z[:], want)
    assert np.array_equal(z[70:130], want[70:130])  # a partial read of a shard


def test_v3_refusals(tmp_path):
    def create(chunks=(128, D), dtype="float32", shape=X.shape):
        return zarr.create_array(store=str(tmp_path / "r.zarr"), shape=shape, chunks=chunks,
                                 dtype=dtype, serializer=TurboQuantCodec(), compressors=None,
                                 overwrite=True)

    with pytest.raises(ChunkError) as e:
        create(chunks=(128, 32))
    assert str(e.value) == ("tq.turboquant: chunks (128, 32) of an array (300, 64) must "
                            "span the last axis (the vector, 64 values) exactly, not 32: "
                            "rechunk with {1: -1} (Dask) or use chunks=(128, 64)")
    with pytest.raises(ChunkError, match="not 128"):  # wider than the vector: padding
        create(chunks=(128, 128))
    with pytest.raises(ChunkError, match=r"dtype int32 is not supported \(need float16"):
        create(dtype="int32")
    with pytest.raises(ChunkError, match="dtype bool"):
        create(dtype="bool")
    z = create()
    x = X.copy()
    x[128 + 17, 3] = np.nan
    with pytest.raises(ChunkError) as e:
        z[...] = x
    assert str(e.value) == ("tq.turboquant: chunk of shape (128, 64) (float32): row 17 of "
                            "the chunk: contains NaN or infinite values; tq refuses NaN and "
                            "infinity")
    for bad, words in [({"bits": 9}, "bits must be an integer from 1 to 8"),
                       ({"mode": "fast"}, "mode must be one of mse, prod"),
                       ({"mode": "prod", "scale_rule": "ls"}, "prod mode requires the norm"),
                       ({"chunk_rows": 12}, "chunk rows 12 invalid"),
                       ({"bitz": 4}, "unknown configuration key(s) bitz")]:
        with pytest.raises(ChunkError, match=None) as e:
            TurboQuantCodec(**bad)
        assert words in str(e.value) and str(e.value).startswith("tq.turboquant: ")
        with pytest.raises(ChunkError) as e:
            TurboQuant(**bad)
        assert words in str(e.value)


def test_codecs_pickle_and_compare():
    c = TurboQuantCodec(bits=3, seed=11)
    c2 = pickle.loads(pickle.dumps(c))
    assert c2 == c and c2.to_dict() == c.to_dict() and c2.bits == 3 and c2.seed == 11
    assert TurboQuantCodec.from_dict(c.to_dict()) == c
    assert TurboQuantCodec() == TurboQuantCodec(bits=4, scale_rule="ls")  # defaults resolved
    n = TurboQuant(bits=3, mode="prod")
    n2 = pickle.loads(pickle.dumps(n))
    assert n2 == n and n2.get_config() == n.get_config() and n2.scale_rule == "norm"
    assert numcodecs.get_codec(n.get_config()) == n


# ---------------------------------------------------------------------------- zarr v2


def test_v2_numcodecs_round_trip_and_out():
    codec = TurboQuant(bits=3)
    return_codec = numcodecs.get_codec({"id": "tq", "bits": 3})
    assert return_codec == codec
    blob = codec.encode(X[:128])
    assert blob == tqcli.compress(X[:128], bits=3)
    out = np.full((128, D), 7.0, np.float32)
    assert codec.decode(blob, out=out) is out
    assert np.array_equal(out, tq_rows(X[:128], bits=3))
    assert np.array_equal(codec.decode(blob), out)
    with pytest.raises(ChunkError, match="dtype int64"):
        codec.encode(np.zeros((8, D), np.int64))


def test_v2_store(tmp_path):
    path = str(tmp_path / "v2.zarr")
    zarr.create_array(store=path, shape=X.shape, chunks=(128, D), dtype="float32",
                      zarr_format=2, compressors=TurboQuant(), filters=None)[...] = X
    meta = json.loads((tmp_path / "v2.zarr" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "tq" and meta["compressor"]["bits"] == 4
    # padding rows of the edge chunk are encoded (numcodecs is not told the fill value),
    # and do not change the real rows
    assert np.array_equal(zarr.open_array(path)[:], per_chunk(X, 128))


# ---------------------------------------------------------------------------- entry points


def _dist_info(folder: Path) -> None:
    """A dist-info of tq holding pyproject.toml's entry points, so that a fresh process
    finds them whether or not this checkout is installed (an installed tq's are the same)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    eps = project["entry-points"]
    info = folder / "tq-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tq\nVersion: 0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items()) + "\n"
        for group, items in eps.items()))
    assert eps["zarr.codecs"] == {"tq.turboquant": "tqcli.integrations.zarr_codecs:TurboQuantCodec"}
    assert eps["numcodecs.codecs"] == {"tq": "tqcli.integrations.numcodecs_codec:TurboQuant"}


def test_fresh_interpreter_with_only_zarr_reads_both_stores(tmp_path):
    v3_array(tmp_path / "v3.zarr")
    zarr.create_array(store=str(tmp_path / "v2.zarr"), shape=X.shape, chunks=(128, D),
                      dtype="float32", zarr_format=2, compressors=TurboQuant(),
                      filters=None)[...] = X
    _dist_info(tmp_path / "site")
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import zarr
        a = zarr.open_array(sys.argv[1])[:]
        b = zarr.open_array(sys.argv[2])[:]
        import numcodecs
        c = numcodecs.get_codec({"id": "tq", "bits": 2})
        np.save(sys.argv[3], np.stack([a, b]))
        print(type(c).__module__, c.bits)
    """)
    # the tqcli this test imports (the checkout, or an installed copy with its numba cache)
    here = str(Path(tqcli.__file__).parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), here]))
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "v3.zarr"),
                        str(tmp_path / "v2.zarr"), str(tmp_path / "out.npy")],
                       capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split() == ["tqcli.integrations.numcodecs_codec", "2"]
    both = np.load(tmp_path / "out.npy")
    want = per_chunk(X, 128)
    assert np.array_equal(both[0], want) and np.array_equal(both[1], want)


# ---------------------------------------------------------------------------- command line


def tq(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_zarr_bridges(tmp_path):
    store = tmp_path / "d.zarr"
    grp = zarr.open_group(str(store), mode="w")
    grp.create_array("emb", shape=X.shape, chunks=(70, D), dtype="float32")[...] = X
    np.save(tmp_path / "x.npy", X)
    r = tq("compress", f"{store}/emb", "-o", tmp_path / "a.tqz")
    assert r.exit_code == 0, r.output
    # read chunk by chunk, compressed exactly as the .npy is
    assert (tmp_path / "a.tqz").read_bytes() == tqcli.compress(X)
    r = tq("compress", store, "-o", tmp_path / "b.tqz")  # a group holding one array
    assert r.exit_code == 0 and (tmp_path / "b.tqz").read_bytes() == tqcli.compress(X)
    r = tq("compress", f"{store}/emb/")
    assert r.exit_code == 1 and "a zarr array is a folder: name the output with -o" in r.output
    want = tqcli.decompress(tmp_path / "a.tqz")
    # plain (the default): zarr's own codecs, the decoded values exactly
    r = tq("decompress", tmp_path / "a.tqz", "-o", tmp_path / "p.zarr")
    assert r.exit_code == 0, r.output
    p = zarr.open_array(str(tmp_path / "p.zarr"))
    assert np.array_equal(p[:], want)
    assert "tq.turboquant" not in (tmp_path / "p.zarr" / "zarr.json").read_text()
    r = tq("decompress", tmp_path / "a.tqz", "-o", tmp_path / "p.zarr")
    assert r.exit_code == 1 and "already exists; use -f to overwrite" in r.output
    # tq: the container's settings; decoding re-encoded tq values moves them by float
    # rounding only
    r = tq("decompress", tmp_path / "a.tqz", "-o", tmp_path / "p.zarr", "-f", "--rows",
           "10:290", "--zarr-codec", "tq")
    assert r.exit_code == 0, r.output
    t = zarr.open_array(str(tmp_path / "p.zarr"))
    assert t.shape == (280, D) and "tq.turboquant" in (tmp_path / "p.zarr" / "zarr.json"
                                                       ).read_text()
    assert np.abs(t[:] - want[10:290]).max() < 1e-5
    # never over a folder that is not a zarr store; no temporary folder left behind
    (tmp_path / "keep.zarr").mkdir()
    (tmp_path / "keep.zarr" / "mine.txt").write_text("x")
    r = tq("decompress", tmp_path / "a.tqz", "-o", tmp_path / "keep.zarr", "-f")
    assert r.exit_code == 1 and "not a zarr store; refusing to replace it" in r.output
    assert os.listdir(tmp_path / "keep.zarr") == ["mine.txt"]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    r = tq("decompress", tmp_path / "a.tqz", "-o", tmp_path / "y.npy", "--zarr-codec", "tq")
    assert r.exit_code == 2 and "--zarr-codec is for a zarr output: -o OUT.zarr" in r.output


def test_cli_zarr_input_refusals(tmp_path):
    x = X.copy()
    x[75, 0] = np.inf
    zarr.create_array(store=str(tmp_path / "nan.zarr"), shape=x.shape, chunks=(64, D),
                      dtype="float32")[...] = x
    zarr.create_array(store=str(tmp_path / "int.zarr"), shape=(10, D), chunks=(10, D),
                      dtype="int16")
    grp = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    for k in ("a", "b"):
        grp.create_array(k, shape=(8, D), dtype="float32")
    zarr.create_array(store=str(tmp_path / "bad.zarr"), shape=(64, D), chunks=(32, D),
                      dtype="float32")[...] = X[:64]
    (tmp_path / "bad.zarr" / "c" / "1" / "0").write_bytes(b"garbage")
    # a v2 array of objects whose chunk is a pickle that would create a file: never run
    (tmp_path / "pk.zarr").mkdir()
    (tmp_path / "pk.zarr" / ".zarray").write_text(json.dumps(dict(
        zarr_format=2, shape=[2, D], chunks=[2, D], dtype="|O", compressor=None,
        fill_value=None, order="C", filters=[{"id": "pickle", "protocol": 5}])))
    (tmp_path / "pk.zarr" / "0.0").write_bytes(pickle.dumps(_Opens(tmp_path / "ran")))
    for name, words in [
            ("nan.zarr", "row 75: contains NaN or infinite values"),
            ("int.zarr", "dtype int16 is not supported (need float16, float32 or float64)"),
            ("g.zarr", "is a zarr group holding 2 arrays; name one as STORE/ARRAY (a, b)"),
            ("bad.zarr", "cannot read the zarr array ("),
            ("pk.zarr", "")]:
        r = tq("compress", tmp_path / name, "-o", tmp_path / "o.tqz")
        assert r.exit_code == 1, r.output
        (line,) = r.output.splitlines()
        assert line.startswith(f"tq: {tmp_path / name}: {words}"), line
    assert not (tmp_path / "o.tqz").exists() and not (tmp_path / "ran").exists()
    # zarr 3.1 itself refuses that store (object dtype); tq's own check, for a zarr that
    # would not, looks for the pickle codec in the metadata before any chunk is read
    from tqcli.arrayio.zarrio import _uses_pickle

    assert _uses_pickle({"filters": [{"id": "pickle", "protocol": 5}]})
    assert _uses_pickle({"codecs": [{"name": "bytes"}, {"name": "numcodecs.pickle"}]})
    assert not _uses_pickle({"compressor": {"id": "tq", "bits": 4}, "filters": None})


class _Opens:
    """Unpickling this creates a file (what a hostile pickle could do instead)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# ---------------------------------------------------------------------------- Dask


da = pytest.importorskip("dask.array", reason="the zarr extra (with Dask) is not installed: "
                         "pip install '.[zarr]' (.ci/run installs it)")


def test_dask_threads_and_split_refusal(tmp_path):
    arr = da.from_array(X, chunks=(100, D))
    arr.to_zarr(str(tmp_path / "t.zarr"), serializer=TurboQuantCodec(), compressors=None)
    back = da.from_zarr(str(tmp_path / "t.zarr"))
    assert back.chunks == ((100, 100, 100), (D,))
    assert np.array_equal(back.compute(scheduler="threads"), per_chunk(X, 100))
    split = da.from_array(X, chunks=(100, 32))
    with pytest.raises(ChunkError, match=r"rechunk with \{1: -1\}"):
        split.to_zarr(str(tmp_path / "s.zarr"), serializer=TurboQuantCodec(),
                      compressors=None)
    # the fix the message names
    split.rechunk({1: -1}).to_zarr(str(tmp_path / "s.zarr"), serializer=TurboQuantCodec(),
                                   compressors=None, mode="w")
    assert np.array_equal(da.from_zarr(str(tmp_path / "s.zarr")).compute(), per_chunk(X, 100))


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed", reason="the zarr extra (with dask."
                                      "distributed) is not installed: pip install '.[zarr]'")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_distributed_v3_and_v2(tmp_path, cluster_client):
    x = gaussian(1000, D, seed=9)
    arr = da.from_array(x, chunks=(128, D))
    v3, v2 = str(tmp_path / "d3.zarr"), str(tmp_path / "d2.zarr")
    arr.to_zarr(v3, serializer=TurboQuantCodec(), compressors=None)  # the client's cluster
    arr.to_zarr(v2, zarr_format=2, compressors=TurboQuant(), filters=None)
    want = per_chunk(x, 128)
    assert np.array_equal(da.from_zarr(v3).compute(), want)
    assert np.array_equal(da.from_zarr(v2).compute(), want)
    # the workers did the work, in processes of their own
    pids = cluster_client.run(os.getpid)
    assert len(pids) == 2 and os.getpid() not in pids.values()
    # a refusal on a worker reaches the caller with its message
    bad = x.copy()
    bad[300, 1] = np.nan
    with pytest.raises(ChunkError, match="row 44 of the chunk: contains NaN"):
        da.from_array(bad, chunks=(128, D)).to_zarr(str(tmp_path / "bad.zarr"),
                                                    serializer=TurboQuantCodec(),
                                                    compressors=None)


def test_example_on_an_existing_cluster(tmp_path, cluster_client, monkeypatch, capsys):
    """examples/dask_compress.py pointed at a running scheduler (--scheduler ADDRESS): its
    figures are those of tq on the same rows."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dask_compress",
                                                  ROOT / "examples" / "dask_compress.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    x = gaussian(2000, D, seed=4)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "x.zarr"
    monkeypatch.setattr(sys, "argv", [
        "dask_compress.py", "--npy", str(tmp_path / "x.npy"), "--chunk-rows", "512",
        "--out", str(out), "--scheduler", cluster_client.scheduler.address])
    example.main()
    line = capsys.readouterr().out
    y = per_chunk(x, 512)
    want = float(np.mean(((x.astype(np.float64) - y) ** 2).sum(1)
                         / (x.astype(np.float64) ** 2).sum(1)))
    assert f"nmse {want:.6f} " in line and "2 workers" in line, line
    assert np.array_equal(zarr.open_array(str(out))[:], y)


def test_without_zarr_the_bridges_name_the_extra(tmp_path, monkeypatch):
    from tqcli import arrayio
    from tqcli.errors import TqError

    zarr.create_array(store=str(tmp_path / "a.zarr"), shape=(8, D), dtype="float32")
    monkeypatch.setitem(sys.modules, "zarr", None)  # `import zarr` now fails
    with pytest.raises(TqError) as e:
        arrayio.ZarrSink(str(tmp_path / "o.zarr"), (8, D), "float32")
    assert str(e.value) == f"{tmp_path / 'o.zarr'}: zarr stores need the zarr extra: " \
                           f"pip install 'tq[zarr]'"
    with pytest.raises(TqError) as e:
        arrayio.open_input(str(tmp_path / "a.zarr"))
    assert str(e.value) == f"{tmp_path / 'a.zarr'}: zarr stores need the zarr extra: " \
                           f"pip install 'tq[zarr]'"
    assert os.listdir(tmp_path) == ["a.zarr"]


def test_entropy_coding_with_a_fractional_rate_in_both_codecs(tmp_path):
    """The zarr and numcodecs codecs take coding="entropy" with a fractional bits; a
    decompress to zarr of an entropy-coded file keeps the coding and the rate it achieved."""
    from tqcli.integrations.chunkcodec import ChunkError, normalize_options
    from tqcli.integrations.numcodecs_codec import TurboQuant

    x = np.random.default_rng(3).standard_normal((300, 48)).astype(np.float32)
    codec = TurboQuant(bits=2.5, coding="entropy")
    blob = codec.encode(x)
    assert tqcli.read_header(blob).coding == "entropy"
    np.testing.assert_array_equal(codec.decode(blob).reshape(x.shape), tqcli.decompress(blob))
    with pytest.raises(ChunkError, match="integer"):
        normalize_options({"bits": 2.5}, "tq")
    with pytest.raises(ChunkError, match="mse mode only"):
        normalize_options({"bits": 3, "coding": "entropy", "mode": "prod"}, "tq")
    src = tmp_path / "e.tqz"
    src.write_bytes(tqcli.compress(x, bits=2.5, coding="entropy"))
    tqcli.decompress_file(str(src), str(tmp_path / "e.zarr"), zarr_codec="tq")
    meta = json.loads((tmp_path / "e.zarr" / "zarr.json").read_text())
    conf = meta["codecs"][0]["configuration"]
    assert conf["coding"] == "entropy" and 2.4 < conf["bits"] < 2.7
    assert zarr.open_array(str(tmp_path / "e.zarr"))[:].shape == x.shape


def test_a_chunk_past_the_file_expansion_limit_reads_back(tmp_path):
    """Zero rows at an error target near 1 compress past the expansion limit of a file
    (spec 13.9); a chunk that declares no more values than the array's chunk is decoded at
    any expansion, so what tq wrote into zarr reads back."""
    x = np.zeros((512, 256), np.float32)
    x[-1] = 1.0  # the last row: no trailing fill rows for the codec to leave out
    blob = tqcli.compress(x, coding="entropy", nmse=0.999, scale_dtype="float16")
    assert x.nbytes / len(blob) > 256  # past the file limit
    z = v3_array(tmp_path / "z.zarr", x=x, chunks=(512, 256),
                 serializer=TurboQuantCodec(coding="entropy", nmse=0.999, scale_dtype="float16"))
    y = zarr.open_array(str(tmp_path / "z.zarr"), mode="r")[...]
    assert np.array_equal(y, tqcli.decompress(blob, max_ratio=float("inf")))
    del z

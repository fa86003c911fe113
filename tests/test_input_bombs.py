"""Inputs that inflate (spec 13.9's limit, applied to what tq compresses): a 2 MB .npz
whose member deflates 2 GiB of zeros, a zarr store (v2 zlib, v3 gzip) whose one chunk
decodes to 1 GiB, an HDF5 dataset whose gzip chunk does -- each refused from its metadata,
before anything is inflated, within 1 s and 100 MB of extra memory, with the flag that
raises the limit named; the same construction at a small size compresses once the limit
is raised (the files are valid).  Before: the .npz compressed at a peak of 4.3 GB (the
member read whole), the zarr chunk was refused only after 2.2 GB.

The crafted files come from tests/bombs.py (valid, their checksums right).
"""

from __future__ import annotations

import numpy as np
import pytest

import tqcli
from bombs import hdf5_chunk_bomb, zarr_chunk_bomb, zip_bomb_npz
from fuzzkit import check_cli_failure


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """name -> (file, the flag the refusal must name); built once (about 4 s)."""
    root = tmp_path_factory.mktemp("bombs")
    assert zip_bomb_npz(root / "zip.npz", gib=2.0) < 2_200_000
    assert zarr_chunk_bomb(root / "v2.zarr", 2, gib=1.0) < 1_100_000
    assert zarr_chunk_bomb(root / "v3.zarr", 3, gib=1.0) < 1_100_000
    assert hdf5_chunk_bomb(root / "h.h5", gib=1.0) < 1_100_000
    return root, {"zip.npz": "--max-ratio", "v2.zarr": "--memory", "v3.zarr": "--memory",
                  "h.h5": "--memory"}


@pytest.mark.parametrize("name", ["zip.npz", "v2.zarr", "v3.zarr", "h.h5"])
def test_a_bomb_is_refused_from_its_metadata(pool, bombs, name, tmp_path):
    root, flags = bombs
    r = pool.run(["compress", str(root / name), "-o", "out.tqz"], tmp_path)
    problems = check_cli_failure(r, str(root / name), tmp_path, [], f"compress {name}",
                                 pool.base_rss)
    assert not problems, (problems, r.lines)
    assert flags[name] in r.lines[0], r.lines
    assert "1 GiB" in r.lines[0] or "2 GiB" in r.lines[0], r.lines


def test_the_limits_reach_the_library(bombs):
    root, _ = bombs
    from tqcli.fileio import verbs

    with pytest.raises(tqcli.TqError) as e:
        verbs.compress_collection_file(str(root / "zip.npz"), str(root / "z.tqz"))
    assert "max_ratio=" in str(e.value) and e.value.kind == "ratio"
    with pytest.raises(tqcli.TqError) as e:
        verbs.compress_file(str(root / "v2.zarr"), str(root / "z.tqz"))
    assert "memory_limit=" in str(e.value) and e.value.kind == "memory"
    # a budget above the chunk moves the refusal to the ratio: 1 GiB of zeros in 1 MB
    with pytest.raises(tqcli.TqError) as e:
        verbs.compress_file(str(root / "v3.zarr"), str(root / "z.tqz"), memory_limit=2 << 30)
    assert e.value.kind == "ratio"


@pytest.mark.parametrize("kind", ["npz", "zarr2", "zarr3", "hdf5"])
def test_the_same_construction_small_compresses_with_a_larger_limit(tq, tmp_path, kind):
    """4 MiB of zeros in a few KB (about 1000 x): refused at the default, compressed with
    --max-ratio 2000, and the collection or array decodes to zeros."""
    name = {"npz": "s.npz", "zarr2": "s2.zarr", "zarr3": "s3.zarr", "hdf5": "s.h5"}[kind]
    if kind == "npz":
        zip_bomb_npz(tmp_path / name, gib=1 / 256)
    elif kind == "hdf5":
        hdf5_chunk_bomb(tmp_path / name, gib=1 / 256)
    else:
        zarr_chunk_bomb(tmp_path / name, int(kind[-1]), gib=1 / 256)
    code, _, err = tq("compress", name, "-o", "s.tqz")
    assert code == 1 and "--max-ratio" in err[0] and "256 x" in err[0], err
    assert not (tmp_path / "s.tqz").exists()
    code, _, err = tq("compress", name, "-o", "s.tqz", "--max-ratio", "2000", "-b", "2")
    assert code == 0, err
    code, _, err = tq("decompress", "s.tqz", "-o", "back" + (".npz" if kind == "npz" else
                                                              ".h5" if kind == "hdf5" else
                                                              ".npy"), "--max-ratio", "inf")
    assert code == 0, err
    if kind == "npz":
        with np.load(tmp_path / "back.npz") as z:
            y = z["x"]
    elif kind == "hdf5":
        import h5py

        with h5py.File(tmp_path / "back.h5") as f:
            y = f["x"][()]
    else:
        y = np.load(tmp_path / "back.npy")
    assert y.shape == (1024, 1024) and not y.any()


def test_float_data_compressed_by_its_container_is_far_below_the_limit(tq, tmp_path):
    """Real float data deflate about 1.1:1: gzip HDF5, zstd zarr and a compressed .npz of
    Gaussian rows compress at the default limit."""
    import h5py
    import zarr

    x = np.random.default_rng(0).standard_normal((512, 64)).astype(np.float32)
    np.savez_compressed(tmp_path / "g.npz", x=x)
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_dataset("x", data=x, chunks=(64, 64), compression="gzip")
    zarr.create_array(str(tmp_path / "g.zarr"), data=x, chunks=(64, 64))
    for name in ("g.npz", "g.h5", "g.zarr"):
        code, _, err = tq("compress", name, "-o", name + ".tqz", "-b", "4")
        assert code == 0, (name, err)

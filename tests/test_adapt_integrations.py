"""The adaptive coding in the zarr v3 codec and the numcodecs codec (issue 24): adapt true
(a basis per chunk), "auto" (per chunk where it pays) and a basis given once that every
chunk shares; the configuration records adapt only when it is set."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed: pip install "
                           "'.[zarr]' (.ci/run installs it)")
numcodecs = pytest.importorskip("numcodecs", reason="the zarr extra is not installed")

import tqcli  # noqa: E402
from tqcli.codec import adaptive_model  # noqa: E402
from tqcli.integrations.chunkcodec import ChunkError  # noqa: E402
from tqcli.integrations.numcodecs_codec import TurboQuant  # noqa: E402
from tqcli.integrations.zarr_codecs import TurboQuantCodec  # noqa: E402
from test_adapt_auto import flat, structured  # noqa: E402

X = structured(1200, 48, seed=3)
ROWS = 400


def _coding(blob) -> str:
    return tqcli.inspect(blob).get("coding", {}).get("name", "fixed")


def test_configuration_records_adapt_only_when_set():
    assert "adapt" not in TurboQuant(bits=3).get_config()
    assert "adapt" not in TurboQuantCodec(bits=3).to_dict()["configuration"]
    assert TurboQuant(bits=3, adapt=True).get_config()["adapt"] is True
    assert TurboQuantCodec(bits=3, adapt="auto").to_dict()["configuration"]["adapt"] == "auto"
    assert TurboQuantCodec(bits=3, adapt="auto").adapt == "auto"
    again = numcodecs.get_codec(TurboQuant(bits=3, adapt="auto").get_config())
    assert again.get_config() == TurboQuant(bits=3, adapt="auto").get_config()
    with pytest.raises(ChunkError, match="adapt"):
        TurboQuant(bits=3, adapt="maybe")
    with pytest.raises(ChunkError, match="basis"):
        TurboQuantCodec(bits=3, basis=np.eye(4))


def test_numcodecs_per_chunk_auto_and_a_shared_basis():
    chunk = X[:ROWS]
    per = TurboQuant(bits=3, adapt=True).encode(chunk)
    assert per == tqcli.compress(chunk, bits=3, adapt=True)
    assert _coding(per) == "adaptive"
    poor = flat(300, 256)
    auto = TurboQuant(bits=3, adapt="auto")
    assert auto.encode(poor) == tqcli.compress(poor, bits=3)
    assert _coding(auto.encode(chunk)) == "adaptive"
    basis = adaptive_model.fit_basis(X)
    shared = TurboQuant(bits=3, basis=basis)
    assert shared.get_config()["adapt"] is True
    blobs = [shared.encode(X[a:a + ROWS]) for a in range(0, len(X), ROWS)]
    for a, blob in zip(range(0, len(X), ROWS), blobs):
        assert blob == tqcli.compress(X[a:a + ROWS], bits=3, adapt=basis)
        # a codec made from the stored configuration decodes it
        plain = numcodecs.get_codec(shared.get_config())
        assert np.array_equal(plain.decode(blob), tqcli.decompress(blob))


def test_zarr_v3_store_with_a_shared_basis_and_pickle(tmp_path):
    basis = adaptive_model.fit_basis(X)
    codec = TurboQuantCodec(bits=3, basis=basis)
    z = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=X.shape, chunks=(ROWS, 48),
                          dtype=X.dtype, serializer=codec, compressors=None)
    z[...] = X
    want = np.concatenate([tqcli.decompress(tqcli.compress(X[a:a + ROWS], bits=3,
                                                           adapt=basis))
                           for a in range(0, len(X), ROWS)])
    back = zarr.open_array(str(tmp_path / "a.zarr"))
    assert np.array_equal(back[...], want)
    again = pickle.loads(pickle.dumps(codec))  # Dask ships it: the basis goes along
    assert again.config == codec.config and again._basis.key() == basis.key()
    from tqcli.integrations import chunkcodec
    options = chunkcodec.with_basis(again.config, again._basis)
    assert tqcli.compress(X[:ROWS], **options) == tqcli.compress(X[:ROWS], bits=3, adapt=basis)


def test_zarr_v3_adapt_per_chunk(tmp_path):
    z = zarr.create_array(store=str(tmp_path / "b.zarr"), shape=X.shape, chunks=(ROWS, 48),
                          dtype=X.dtype, serializer=TurboQuantCodec(bits=3, adapt=True),
                          compressors=None)
    z[...] = X
    want = np.concatenate([tqcli.decompress(tqcli.compress(X[a:a + ROWS], bits=3,
                                                           adapt=True))
                           for a in range(0, len(X), ROWS)])
    assert np.array_equal(zarr.open_array(str(tmp_path / "b.zarr"))[...], want)

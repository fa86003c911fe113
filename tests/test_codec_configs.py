"""Non-default codec configurations survive their serialised form: the numcodecs codec
`tq` (get_config / from_config, and a zarr v2 store's .zarray) and the zarr v3 codec
`tq.turboquant` (to_dict / from_dict, and a store's zarr.json).  Every option is set away
from its default, including the entropy coding at a fractional rate, which a config that
lost `coding` could not even rebuild (2.5 bits is only valid with coding entropy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tqcli

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")
numcodecs = pytest.importorskip("numcodecs")

from tqcli.integrations.numcodecs_codec import TurboQuant  # noqa: E402
from tqcli.integrations.zarr_codecs import TurboQuantCodec  # noqa: E402

# every key of tqcli/codec/options.py CONFIG_KEYS, none at its default
ENTROPY = {"bits": 2.5, "mode": "mse", "seed": 123456789, "rounds": 5, "scale_rule": "norm",
           "scale_dtype": "float64", "rotation": "hadamard2", "coding": "entropy",
           "center": True, "chunk_rows": 64}
PROD = {"bits": 3, "mode": "prod", "seed": 2 ** 64 - 1, "rounds": 1, "scale_rule": "norm",
        "scale_dtype": "float16", "rotation": "hadamard2", "coding": "packed", "center": True,
        "chunk_rows": 16}


def rows(n=256, d=48, seed=0):
    return (np.random.default_rng(seed).standard_normal((n, d)) + 2.0).astype(np.float32)


def header_matches(blob: bytes, config: dict) -> None:
    """The bytes a codec wrote say the configured settings."""
    h = tqcli.read_header(blob)
    assert h.coding == config["coding"]
    assert h.mode == config["mode"] and h.seed == config["seed"]
    assert h.rounds == config["rounds"] and h.rotation == config["rotation"]
    assert h.scale_rule == config["scale_rule"] and h.scale_dtype == config["scale_dtype"]
    assert h.centered == config["center"] and h.chunk_rows == config["chunk_rows"]
    if config["coding"] == "entropy":
        assert abs(h.model.rate - config["bits"]) < 0.05
    else:
        assert h.bits == config["bits"]


@pytest.mark.parametrize("config", [ENTROPY, PROD], ids=["entropy", "prod"])
def test_numcodecs_config_round_trips_every_option(config):
    codec = TurboQuant(**config)
    got = codec.get_config()
    assert got == {"id": "tq", **config}
    again = numcodecs.get_codec(json.loads(json.dumps(got)))   # as a .zarray stores it
    assert again.get_config() == got
    # numcodecs' convention: get_codec takes the id off and hands the rest to from_config
    assert TurboQuant.from_config({k: v for k, v in got.items() if k != "id"}).get_config() == got
    x = rows()
    blob = again.encode(x)
    header_matches(bytes(blob), config)
    assert bytes(blob) == bytes(codec.encode(x))


@pytest.mark.parametrize("config", [ENTROPY, PROD], ids=["entropy", "prod"])
def test_zarr_v3_codec_dict_round_trips_every_option(config):
    codec = TurboQuantCodec(**config)
    d = codec.to_dict()
    assert d == {"name": "tq.turboquant", "configuration": config}
    again = TurboQuantCodec.from_dict(json.loads(json.dumps(d)))
    assert again.to_dict() == d and again == codec
    for key, value in config.items():
        assert getattr(again, key) == value


def test_zarr_v2_store_with_entropy_at_2_5_bits_reopens_and_writes_the_same(tmp_path):
    x = rows(256, 48)
    path = str(tmp_path / "v2.zarr")
    z = zarr.create_array(store=path, shape=x.shape, chunks=(128, 48), dtype="float32",
                          zarr_format=2, compressors=TurboQuant(**ENTROPY), filters=None)
    z[...] = x
    meta = json.loads((tmp_path / "v2.zarr" / ".zarray").read_text())
    assert meta["compressor"] == {"id": "tq", **ENTROPY}
    reopened = zarr.open_array(path, mode="r+")
    first = reopened[:]
    assert first.shape == x.shape
    assert np.mean((first - x) ** 2) / np.mean(x ** 2) < 0.1
    # the reopened array's codec writes what the original did: entropy-coded chunks
    reopened[:128] = x[:128]
    chunk = (tmp_path / "v2.zarr" / "0.0").read_bytes()
    header_matches(chunk, ENTROPY)
    assert np.array_equal(zarr.open_array(path)[:], first)


def test_zarr_v3_store_with_entropy_at_2_5_bits_reopens_with_the_same_codec(tmp_path):
    x = rows(256, 48)
    path = str(tmp_path / "v3.zarr")
    zarr.create_array(store=path, shape=x.shape, chunks=(128, 48), dtype="float32",
                      serializer=TurboQuantCodec(**ENTROPY), compressors=None)[...] = x
    meta = json.loads((tmp_path / "v3.zarr" / "zarr.json").read_text())
    (serializer,) = [c for c in meta["codecs"] if c["name"] == "tq.turboquant"]
    assert serializer["configuration"] == ENTROPY
    reopened = zarr.open_array(path, mode="r+")
    first = reopened[:]
    reopened[128:] = x[128:]
    assert np.array_equal(zarr.open_array(path)[:], first)
    chunk = next(p for p in (tmp_path / "v3.zarr").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    header_matches(chunk.read_bytes(), ENTROPY)


def test_zarr_v3_codec_attributes_are_its_options_and_nmse_is_none_unless_set():
    from tqcli.integrations.zarr_codecs import TurboQuantCodec

    codec = TurboQuantCodec(bits=3)
    assert codec.bits == 3 and codec.nmse is None  # a KeyError before
    assert TurboQuantCodec(coding="entropy", bits=None, nmse=0.02).nmse == 0.02
    with pytest.raises(AttributeError):
        codec.not_an_option

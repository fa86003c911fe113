"""TurboQuant as a numcodecs codec, codec_id `tq`: for zarr v2 stores and other numcodecs users.

    import numcodecs
    codec = numcodecs.get_codec({"id": "tq", "bits": 4})
    z = zarr.create_array("emb_v2.zarr", shape=(n, 768), chunks=(4096, 768),
                          dtype="float32", zarr_format=2, compressors=codec, filters=None)

With `pip install "tq[zarr]"` the codec is registered through the `numcodecs.codecs` entry
point.  It is lossy, like numcodecs' Quantize or ZFPY.  encode takes an array (the chunk,
with its shape: the last axis is the vector) and returns a complete .tqz stream
(tqcli.integrations.chunkcodec); decode returns the array of the chunk's shape and dtype, decoded as
tqcli.decompress decodes it, or copies it into `out`.  The configuration is
tqcli.codec.options.EncodeOptions.to_config() (defaults as `tq compress`).  numcodecs tells a codec
neither the fill value nor the array's shape, so edge chunks' padding rows are encoded
like others, and a chunk that splits the vector axis cannot be recognised here: give
chunks that span the last axis (zarr v3's `tq.turboquant` codec checks this itself).

numcodecs is imported here, never by the rest of tq.
"""

from __future__ import annotations

import numpy as np
from numcodecs import register_codec
from numcodecs.abc import Codec
from numcodecs.compat import ensure_ndarray_like, ndarray_copy

from . import chunkcodec

CODEC_ID = "tq"


class TurboQuant(Codec):
    """bits, mode, seed, rounds, scale_rule, scale_dtype, rotation, coding, center,
    chunk_rows, nmse and adapt (true: a basis fitted per chunk; "auto": per chunk where it
    pays) as for tqcli.compress.  basis: a fitted basis (tqcli.fit_basis) every chunk
    shares (its components stored in each chunk that uses them); the configuration then
    says adapt true, and a codec made from it decodes the chunks alike."""

    codec_id = CODEC_ID

    def __init__(self, basis=None, **config):
        who = f"numcodecs codec {CODEC_ID!r}"
        self._basis = chunkcodec.check_basis(basis, who)
        if basis is not None:
            config = dict(config, adapt=True)
        options = chunkcodec.normalize_options(config, who)
        for key, value in options.items():
            setattr(self, key, value)
        self._keys = tuple(options)

    @property
    def options(self) -> dict:
        return {k: getattr(self, k) for k in self._keys}

    def _encode_options(self) -> dict:
        return chunkcodec.with_basis(self.options, self._basis)

    def get_config(self) -> dict:
        return {"id": self.codec_id, **self.options}

    def encode(self, buf):
        arr = ensure_ndarray_like(buf)
        if not isinstance(arr, np.ndarray):
            arr = np.asarray(arr)
        return chunkcodec.encode_chunk(arr, self._encode_options(),
                                       f"numcodecs codec {CODEC_ID!r}")

    def decode(self, buf, out=None):
        data = bytes(memoryview(ensure_ndarray_like(buf)).cast("B")) \
            if not isinstance(buf, bytes) else buf
        y = chunkcodec.decode_chunk_as_stored(data, f"numcodecs codec {CODEC_ID!r}")
        return ndarray_copy(y, out) if out is not None else y


# importing this module is enough for numcodecs.get_codec({"id": "tq"}) in this process (the
# entry point does it for processes that never import tqcli)
register_codec(TurboQuant)

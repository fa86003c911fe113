"""TurboQuant as a zarr v3 codec: `tq.turboquant`, an ArrayBytesCodec (the `serializer=`).

    import zarr
    from tqcli.integrations.zarr_codecs import TurboQuantCodec
    z = zarr.create_array("emb.zarr", shape=(n, 768), chunks=(4096, 768), dtype="float32",
                          serializer=TurboQuantCodec(bits=4), compressors=None)

With `pip install "tq[zarr]"` the codec is registered through the `zarr.codecs` entry point,
so a store written with it opens with nothing but `import zarr`.  Its configuration in
zarr.json holds every option of tqcli.compress (tqcli.codec.options.CONFIG_KEYS, defaults as
`tq compress`); each chunk is a complete .tqz stream (tqcli.integrations.chunkcodec), decoded exactly as
tqcli.decompress decodes the same rows.  Chunks must span the last (vector) axis: validate()
refuses a chunk grid that splits it, naming the fix.  Inside `sharding_indexed` the inner
chunks must span the last axis too, but there zarr calls only the sharding codec's validate
and gives inner codecs the inner chunk's shape alone, so this codec cannot see a split
(the pieces would be taken for vectors): keep the inner chunk_shape's last entry the
vector length.

zarr is imported here, never by the rest of tq.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from . import chunkcodec
from ..codec.options import CONFIG_KEYS

NAME = "tq.turboquant"


@dataclass(frozen=True)
class TurboQuantCodec(ArrayBytesCodec):
    """bits, mode, seed, rounds, scale_rule, scale_dtype, rotation, coding, center and
    chunk_rows as for tqcli.compress; None/omitted means tq compress's default."""

    is_fixed_size = False

    options: tuple  # the normalised options as sorted (key, value) pairs: hashable, frozen

    def __init__(self, basis=None, **config) -> None:
        # basis: a fitted basis (tqcli.fit_basis) every chunk shares; zarr.json then says
        # adapt true (the object is kept here and pickled with the codec, not stored)
        object.__setattr__(self, "_basis", chunkcodec.check_basis(basis, NAME))
        if basis is not None:
            config = dict(config, adapt=True)
        options = chunkcodec.normalize_options(config, NAME)
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    @property
    def config(self) -> dict:
        return dict(self.options)

    def __getattr__(self, name):  # codec.bits, codec.mode, ...
        if name in CONFIG_KEYS or name in ("nmse", "adapt"):  # None unless the config sets it
            return dict(object.__getattribute__(self, "options")).get(name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"TurboQuantCodec({', '.join(f'{k}={v!r}' for k, v in self.options)})"

    def __reduce__(self):  # pickles as its configuration (Dask ships codecs to workers)
        return (_rebuild, (self.config, object.__getattribute__(self, "_basis")))

    @classmethod
    def from_dict(cls, data: dict):
        _, configuration = parse_named_configuration(data, NAME, require_configuration=False)
        return cls(**(configuration or {}))

    def to_dict(self) -> dict:
        return {"name": NAME, "configuration": self.config}

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        chunkcodec.check_dtype(dtype.to_native_dtype(), NAME)
        chunk_shape = getattr(chunk_grid, "chunk_shape", None)
        if chunk_shape is None:
            raise chunkcodec.ChunkError(f"{NAME}: needs a regular chunk grid")
        problem = chunkcodec.split_problem(shape, chunk_shape)
        if problem:
            raise chunkcodec.ChunkError(f"{NAME}: {problem}")

    def resolve_metadata(self, chunk_spec):
        return chunk_spec

    def compute_encoded_size(self, input_byte_length: int, chunk_spec) -> int:
        raise NotImplementedError  # variable size

    def _encode_sync(self, chunk_array, chunk_spec):
        options = chunkcodec.with_basis(self.config, object.__getattribute__(self, "_basis"))
        blob = chunkcodec.encode_chunk(chunk_array.as_numpy_array(), options, NAME,
                                       fill_value=_fill(chunk_spec))
        return chunk_spec.prototype.buffer.from_bytes(blob)

    def _decode_sync(self, chunk_bytes, chunk_spec):
        y = chunkcodec.decode_chunk(chunk_bytes.to_bytes(), chunk_spec.shape,
                                    chunk_spec.dtype.to_native_dtype(), NAME,
                                    fill_value=_fill(chunk_spec))
        return chunk_spec.prototype.nd_buffer.from_numpy_array(y)

    # the kernels release the GIL: chunks run in threads, as zarr's numcodecs adapters do
    async def _encode_single(self, chunk_array, chunk_spec):
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes, chunk_spec):
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)


def _rebuild(config: dict, basis=None):
    return TurboQuantCodec(basis=basis, **config)


def _fill(chunk_spec):
    return chunk_spec.fill_value


# importing this module is enough to read and write tq stores in this process (the entry
# point does it for processes that never import tqcli)
register_codec(NAME, TurboQuantCodec)

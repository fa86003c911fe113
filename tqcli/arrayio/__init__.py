"""Reading input arrays and writing decoded ones, block by block, never more than a block
in memory.

The package, by concern:

* ``npy``     -- the .npy format: its rules in the docstring, the header reader and writer.
* ``base``    -- ArraySource (n rows of d values) and the dtype/shape checks every input
  passes before a data byte is read.
* ``sources`` -- the .npy file/stdin source, the in-memory source (from_array), and
  open_input, which picks a source for a command-line name.
* ``sinks``   -- NpySink and saturating_cast, the cast every sink applies.
* ``hdf5``    -- H5Source and H5Sink; h5py is imported only when HDF5 is used.
* ``zarrio``  -- ZarrSource and ZarrSink (the zarr extra); zarr is imported only when a
  zarr store is read or written.

The rest of tq uses the names below (``from tqcli import arrayio; arrayio.open_input(..)``).
"""

from . import bf16
from .base import ArraySource, check_dtype, check_shape, row_runs
from .hdf5 import H5Sink, H5Source, is_hdf5_name, split_h5_spec
from .npy import NPY_MAGIC, npy_header_bytes, read_npy_header
from .sinks import NpySink, saturating_cast
from .sources import InMemorySource, NpyStreamSource, from_array, open_input, open_npy
from .zarrio import ZARR_CODECS, ZarrSink, ZarrSource, is_zarr_name, is_zarr_store

__all__ = [
    "bf16",
    "ArraySource", "check_dtype", "check_shape",
    "H5Sink", "H5Source", "is_hdf5_name", "row_runs", "split_h5_spec",
    "NPY_MAGIC", "npy_header_bytes", "read_npy_header",
    "NpySink", "saturating_cast",
    "InMemorySource", "NpyStreamSource", "from_array", "open_input", "open_npy",
    "ZARR_CODECS", "ZarrSink", "ZarrSource", "is_zarr_name", "is_zarr_store",
]

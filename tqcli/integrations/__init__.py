"""Plug-ins for other array systems (zarr v3, numcodecs), over the library; found by
their entry points."""

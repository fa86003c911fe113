"""HDF5 attributes as exact JSON (spec/tqz-v1.md 18.3) and back, and the rule every stored
attribute must pass (attr_problem), which the collection reader and writer apply.

The forms: {"str": s} a string, {"strs": [...], "shape": [...]} an array of strings,
{"bytes": hex} a byte string, and {"dtype": d, "shape": [...], "hex": h} numbers (and
fixed-length byte strings, d = "|S<n>") as their little-endian bytes, so that every value,
NaN included, comes back exactly.  d is one of HDF5_ATTR_DTYPES: what h5py reads and
writes back as the same HDF5 type.  What has no such form -- an HDF5 reference, an empty
dataspace, a struct, a long double, a string holding NUL (HDF5's variable-length strings
end there) -- is refused when the collection is written, and a stored value that breaks
the rule is refused by the reader, so that writing an HDF5 file never meets it.

h5py is imported only by write_attr, when an HDF5 file is written.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import InputError

# numbers: booleans, integers, floats (not long double: its bytes differ by platform) and
# complex (h5py's pair of floats), each little-endian
HDF5_ATTR_DTYPES = ("|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
                    "<f2", "<f4", "<f8", "<c8", "<c16")
MAX_BYTES_LEN = 1 << 16  # a fixed-length byte string of at most 64 KiB per value: |S1..|S65536
ATTR_MAX_NDIM = 32
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_BYTES_DTYPE = re.compile(r"\|S([1-9][0-9]{0,4})")


def _shape_problem(shape) -> str | None:
    if not (isinstance(shape, list) and len(shape) <= ATTR_MAX_NDIM and all(
            type(s) is int and 0 <= s <= 1 << 48 for s in shape)):
        return f"shape {shape!r} is not a list of at most {ATTR_MAX_NDIM} integers"
    return None


def _count(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def attr_dtype(name) -> np.dtype | None:
    """The numpy dtype of a stored attribute dtype, or None when it is not one."""
    if not isinstance(name, str):
        return None
    if name in HDF5_ATTR_DTYPES:
        return np.dtype(name)
    m = _BYTES_DTYPE.fullmatch(name)
    if m and int(m.group(1)) <= MAX_BYTES_LEN:
        return np.dtype(name)
    return None


def name_problem(name) -> str | None:
    """An attribute name (any source): a non-empty string without NUL, as HDF5 needs."""
    if not isinstance(name, str) or not name:
        return "an attribute name must be a non-empty string"
    if "\x00" in name:
        return f"attribute name {name!r} holds a NUL character"
    return None


def attr_problem(key: str, value) -> str | None:
    """Why `value` is not a stored HDF5 attribute (18.3), or None."""
    what = f"attribute {key!r}"
    if not isinstance(value, dict):
        return f"{what} is not an HDF5 attribute object"
    keys = set(value)
    if keys == {"str"}:
        s = value["str"]
        if not isinstance(s, str):
            return f"{what}: str is not a string"
        if "\x00" in s:
            return f"{what}: a string holding NUL (HDF5 strings end there)"
        return None
    if keys == {"bytes"}:
        if not (isinstance(value["bytes"], str) and _HEX.fullmatch(value["bytes"])):
            return f"{what}: bytes is not hexadecimal"
        return None
    if keys == {"strs", "shape"}:
        strs, shape = value["strs"], value["shape"]
        problem = _shape_problem(shape)
        if problem:
            return f"{what}: {problem}"
        if not isinstance(strs, list) or len(strs) != _count(shape):
            return f"{what}: strs does not hold the {_count(shape)} strings its shape says"
        if not all(isinstance(s, str) and "\x00" not in s for s in strs):
            return f"{what}: strs holds a value that is not a string without NUL"
        return None
    if keys == {"dtype", "shape", "hex"}:
        dt = attr_dtype(value["dtype"])
        if dt is None:
            return f"{what}: dtype {value['dtype']!r} is not an attribute dtype"
        problem = _shape_problem(value["shape"])
        if problem:
            return f"{what}: {problem}"
        h = value["hex"]
        if not (isinstance(h, str) and _HEX.fullmatch(h)):
            return f"{what}: hex is not hexadecimal"
        if len(h) != 2 * dt.itemsize * _count(value["shape"]):
            return (f"{what}: {len(h) // 2} bytes of hex for shape {value['shape']} "
                    f"{value['dtype']}")
        return None
    return f"{what}: unknown attribute kind (keys {sorted(keys)})"


def attrs_problem(attrs, hdf5: bool) -> str | None:
    """The first problem of an attribute object: its names (any source) and, for an HDF5
    source, its values."""
    if not isinstance(attrs, dict):
        return "attributes must be a JSON object"
    for k, v in attrs.items():
        problem = name_problem(k) or (attr_problem(k, v) if hdf5 else None)
        if problem:
            return problem
    return None


# ---------------------------------------------------------------------- HDF5 <-> JSON


def read_attrs(obj) -> dict:
    """Every attribute of an h5py group or dataset, encoded; InputError naming the object
    and the attribute for one tq cannot store."""
    out = {}
    for k in obj.attrs:
        problem = name_problem(k)
        if problem:
            raise InputError(f"{obj.name}: {problem}")
        try:
            out[k] = encode_attr(obj.attrs[k])
        except InputError as e:
            raise InputError(f"{obj.name}: attribute {k!r} {e.reason}") from None
        except (OSError, TypeError, ValueError) as e:
            raise InputError(f"{obj.name}: attribute {k!r} cannot be read ({e})") from None
    return out


def encode_attr(value):
    """An attribute as h5py reads it, as exact JSON; InputError for what has no form."""
    if type(value).__name__ == "Empty" and hasattr(value, "dtype"):  # h5py.Empty
        raise InputError("has no value (an empty HDF5 dataspace), which tq cannot store")
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError("is a string holding NUL, which HDF5 cannot store")
        return {"str": value}
    a = np.asarray(value)
    if a.dtype.kind in "OU":
        flat = []
        for v in a.reshape(-1).tolist():
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    raise InputError("holds a string that is not UTF-8") from None
            if not isinstance(v, str):
                raise InputError(f"holds a {type(v).__name__} (an HDF5 reference?), which "
                                 f"tq cannot store")
            if "\x00" in v:
                raise InputError("holds a string with NUL, which HDF5 cannot store")
            flat.append(v)
        return {"strs": flat, "shape": list(a.shape)}
    le = a.dtype.newbyteorder("<") if a.dtype.kind in "biufc" else a.dtype
    if a.dtype.fields is not None or attr_dtype(le.str) is None:
        raise InputError(f"of dtype {a.dtype} is not supported")
    return {"dtype": le.str, "shape": list(a.shape),
            "hex": np.ascontiguousarray(a, le).tobytes().hex()}


def decode_attr(obj):
    """A stored attribute (one attr_problem passed) as the value h5py writes back."""
    if "str" in obj:
        return obj["str"]
    if "bytes" in obj:
        return np.bytes_(bytes.fromhex(obj["bytes"]))
    if "strs" in obj:
        out = np.empty(len(obj["strs"]), dtype=object)
        out[:] = obj["strs"]
        return out.reshape(obj["shape"])
    a = np.frombuffer(bytes.fromhex(obj["hex"]), dtype=np.dtype(obj["dtype"]))
    return a.reshape(obj["shape"]) if obj["shape"] else a[0]


def write_attr(attrs, key: str, value, hdf5: bool) -> None:
    """One attribute onto an h5py object's .attrs: a stored HDF5 attribute as it was, any
    other source's (free JSON) as its JSON text."""
    import h5py

    if not hdf5:
        import json

        attrs[key] = json.dumps(value)
        return
    v = decode_attr(value)
    if "strs" in value:  # an array of strings, also an empty one: variable-length UTF-8
        attrs.create(key, v, dtype=h5py.string_dtype("utf-8"))
    else:
        attrs[key] = v

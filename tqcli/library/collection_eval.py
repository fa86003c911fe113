"""tq eval on a collection: error per member and in total, and for KV-cache dumps the error
of attention itself.

Members are compared with the source they came from (an HDF5 tree, .safetensors, .npz):
nmse over the member's vectors (the stored vectors, so a --vector-size cut counts per
head), its ratio to the optimum for its bits (codebook.expected_distortion; for an
entropy-coded member the law's error of its grid, and its bits the rate it achieved), and
the total.  nmse is what README and single-array eval call nmse everywhere: the mean over
vectors of ||x - x^||^2 / ||x||^2 (vectors of norm 0 left out), so the total is the mean
over every vector of every compressed member, not an energy-weighted ratio of sums.

Attention error (what KV quantisation changes): members are paired as keys and values by
name -- a name holding "key" and the same name with "value" in its place (layers/3/key and
layers/3/value; k_proj and v_proj are not guessed).  For each pair of arrays of shape
(..., tokens, head_dim) every leading index (a head) is one attention problem with the
dump's own original keys as queries: W = softmax(Q K^T / sqrt(head_dim)), O = W V, and the
same with the decoded K and V.  Reported: ||W' - W|| / ||W|| and ||O' - O|| / ||O||
(Frobenius norms over all heads), per pair (a layer), computed in float64.
"""

from __future__ import annotations

import tempfile

import numpy as np

from ..codec import codebook
from ..codec.codings import CODINGS


def _flat(x: np.ndarray, d: int) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1, d)


def vector_ratios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||a_i - b_i||^2 / ||a_i||^2 of every row of norm > 0 (float64 rows)."""
    norm = np.einsum("ij,ij->i", a, a)
    e = a - b
    err = np.einsum("ij,ij->i", e, e)
    nz = norm > 0
    return err[nz] / norm[nz]


def member_errors(pairs, codings=None) -> tuple[list[dict], dict]:
    """pairs: (record, original array, decoded array); codings: name -> the "coding" of an
    member whose coding reports one (CollectionFile.codings); returns (rows, total)."""
    from . import evaluation

    codings = codings or {}
    rows, ratio_sum, count = [], 0.0, 0
    for rec, x, y in pairs:
        if rec["kind"] == "raw":
            same = _same(x, y) if y is not None else x
            rows.append({"name": rec["name"], "bits": None, "lossless": True,
                         "exact": bool(same), "nmse": 0.0 if same else None})
            continue
        d = rec["vector"]
        if y is None:  # streamed: x is (sum of the ratios, their count)
            r_sum, r_count = x
        else:
            r = vector_ratios(_flat(_as_float(x), d), _flat(_as_float(y), d))
            r_sum, r_count = float(r.sum()), r.size
        ratio_sum, count = ratio_sum + r_sum, count + r_count
        nm = r_sum / r_count if r_count else 0.0
        coding = codings.get(rec["name"])
        if coding:  # bits: the rate achieved; the optimum: the law's error of its grid
            bits = coding["achieved_bits"]
            opt = evaluation.entropy_theory(d, coding["step"])["optimum"]
        else:
            bits, opt = rec["bits"], codebook.expected_distortion(d, rec["bits"])
        rows.append({"name": rec["name"], "bits": bits, "lossless": False,
                     "coding": coding["name"] if coding else CODINGS.default.cli_name,
                     "vector": d,
                     "nmse": nm, "optimum": opt, "nmse_over_optimum": nm / opt})
    total = {"nmse": ratio_sum / count if count else 0.0, "vectors": count}
    return rows, total


def _same(x, y) -> bool:
    return np.array_equal(np.ascontiguousarray(x).view(np.uint8),
                          np.ascontiguousarray(y).view(np.uint8))


def streamed_stats(rec: dict, original, decoded):
    """member_errors' figures of one member from two streams of its values in C order
    (MemberInput.flat_values, StreamedArray.blocks): (ratio sum, count) of a compressed
    member, whether a raw one is exact; a block of about a million values at a time."""
    d = rec["vector"] if rec["kind"] != "raw" else 1
    size = d * max(1, (1 << 20) // d)
    total, count, same = 0.0, 0, True
    for a, b in zip(_fixed(original, size), _fixed(decoded, size)):
        if rec["kind"] == "raw":
            same = same and a.size == b.size and _same(a, b)
        else:
            r = vector_ratios(_flat(_as_float(a), d), _flat(_as_float(b), d))
            total, count = total + float(r.sum()), count + r.size
    return same if rec["kind"] == "raw" else (total, count)


def _fixed(pieces, size: int):
    """Consecutive pieces of values as new arrays of exactly `size` values (the last may
    be shorter); a piece is copied out before the next is asked for."""
    out, have = None, 0
    for p in pieces:
        p = p.reshape(-1)
        while p.size:
            if out is None:
                out, have = np.empty(size, p.dtype), 0
            take = min(size - have, p.size)
            out[have:have + take] = p[:take]
            have, p = have + take, p[take:]
            if have == size:
                yield out
                out = None
    if out is not None and have:
        yield out[:have]


def _as_float(x: np.ndarray) -> np.ndarray:
    if x.dtype.name == "bfloat16":
        from ..arrayio import bf16

        return bf16.to_f32(x)
    return x


def kv_pairs(names) -> list[tuple[str, str, str]]:
    """(layer, key name, value name) for every name with 'key' whose 'value' twin exists."""
    have, out = set(names), []
    for n in names:
        if "key" in n:
            v = n.replace("key", "value")
            if v in have:
                layer = n.replace("key", "").strip("/._") or n
                out.append((layer, n, v))
    return out


def _softmax(s: np.ndarray) -> np.ndarray:
    s = s - s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s


def attention_error(k, v, k2, v2) -> dict:
    """Relative errors of the attention weights and outputs (see module docstring)."""
    k, v, k2, v2 = (np.asarray(_as_float(a), np.float64) for a in (k, v, k2, v2))
    if k.ndim < 2 or k.shape != v.shape:
        raise ValueError("keys and values must share a shape (..., tokens, head_dim)")
    t, hd = k.shape[-2:]
    k, v = k.reshape(-1, t, hd), v.reshape(-1, t, hd)
    k2, v2 = k2.reshape(-1, t, hd), v2.reshape(-1, t, hd)
    dw = nw = do = no = 0.0
    for h in range(k.shape[0]):  # one head at a time: t x t weights in memory
        w = _softmax(k[h] @ k[h].T / np.sqrt(hd))
        w2 = _softmax(k[h] @ k2[h].T / np.sqrt(hd))
        o, o2 = w @ v[h], w2 @ v2[h]
        dw += float(((w2 - w) ** 2).sum())
        nw += float((w * w).sum())
        do += float(((o2 - o) ** 2).sum())
        no += float((o * o).sum())
    return {"weights_rel_error": float(np.sqrt(dw / nw)),
            "output_rel_error": float(np.sqrt(do / no)), "heads": int(k.shape[0]),
            "tokens": int(t), "head_dim": int(hd)}


def evaluate_collection(input: str, container=None, *, group=None, bits: int = 4,
                        bits_for=(), lossless=(), vector_size=None, memory_limit=None,
                        max_ratio=None, **options) -> dict:
    """Per-member and total error of a collection against its source `input`, and the
    attention error of every key/value pair; without `container`, of a fresh compression
    with the given bits (bits_for, lossless, vector_size as for compress)."""
    from ..arrayio import containers
    from ..arrayio.files import binary_stdin
    from .collections import compress_collection
    from .collection_file import open_collection

    info, members = containers.read_members(input, group)
    originals = {m.name: m for m in members}
    paired = {n for _, k, v in kv_pairs(list(originals)) for n in (k, v)}
    with tempfile.TemporaryFile() as tmp:
        if container is None:  # compressed to a file, not held in memory
            compress_collection(members, tmp, info=info, bits=bits, bits_for=bits_for,
                                lossless=lossless, vector_size=vector_size,
                                memory_limit=memory_limit, **options)
            tmp.seek(0)
            container = tmp
        if container == "-":  # FILE.tqz from stdin, as for a single array
            container = binary_stdin()
        decoded, recs, stats = {}, {}, {}
        with open_collection(container, memory_limit, max_ratio) as c:
            # a key or value of a KV pair is held for the attention error; every other
            # member is compared with its source as both are read, block by block
            for rec, y in c.stream_items():
                name = rec["name"]
                recs[name] = rec
                if name in paired or name not in originals:
                    decoded[name] = _whole(y)
                else:
                    stats[name] = streamed_stats(rec, originals[name].flat_values(),
                                                 y.blocks())
            codings = c.codings
    missing = sorted(set(originals) ^ set(recs))
    if missing:
        from ..errors import TqError

        raise TqError(f"the container and INPUT hold different members ({missing[0]!r})")
    values = {n: originals[n].values() for n in decoded}
    rows, total = member_errors(((recs[n], values[n], decoded[n]) if n in decoded else
                                 (recs[n], stats[n], None) for n in recs), codings)
    attention = []
    for layer, kn, vn in kv_pairs(list(decoded)):
        if values[kn].shape == values[vn].shape and values[kn].ndim >= 2:
            r = attention_error(values[kn], values[vn], decoded[kn], decoded[vn])
            r.update(layer=layer, key=kn, value=vn, key_bits=_bits(recs[kn], codings),
                     value_bits=_bits(recs[vn], codings))
            attention.append(r)
    return {"input": input, "members": rows, "total": total, "attention": attention}


def _whole(y) -> np.ndarray:
    """A StreamedArray's values as one array of its shape."""
    out = np.empty(y.size, y.dtype)
    at = 0
    for piece in y.blocks():
        out[at:at + piece.size] = piece.reshape(-1)
        at += piece.size
    return out.reshape(y.shape)


def _bits(rec: dict, codings: dict):
    """A member's width as reports show it: the record's bits, or an entropy-coded
    member's achieved bits per coordinate."""
    c = codings.get(rec["name"])
    return c["achieved_bits"] if c else rec.get("bits")


def _bits_text(bits, coding: str | None = None) -> str:
    """A width as the report prints it: "raw", "4", or a rate with its coding's label
    ("2.50 ent"; a fractional width names the coding that takes one)."""
    if bits is None:
        return "raw"
    c = CODINGS.resolve(coding or CODINGS.default.cli_name)
    if not c.fractional_rates and not float(bits).is_integer():
        c = next(e for e in CODINGS if e.fractional_rates)
    return f"{bits:.2f} {c.label}" if c.fractional_rates else str(bits)


def report_text(r: dict) -> str:
    from .report import plural

    count = f"{plural(len(r['members']), 'member')}, " if r["members"] else ""
    lines = [f"{r['input']}: {count}total nmse {r['total']['nmse']:.4g} (mean over "
             f"{r['total'].get('vectors', 0)} vectors of ||x - x^||^2 / ||x||^2)"]
    w = max([len(m["name"]) for m in r["members"]] + [6])
    if r["members"]:
        lines.append(f"{'member':<{w}}  {'bits':>8}  {'nmse':>10}  {'/optimum':>8}")
    for m in r["members"]:
        if m["lossless"]:
            lines.append(f"{m['name']:<{w}}  {'lossless':>8}  "
                         f"{'exact' if m['exact'] else 'DIFFERS':>10}")
        else:
            lines.append(f"{m['name']:<{w}}  {_bits_text(m['bits'], m.get('coding')):>8}  "
                         f"{m['nmse']:>10.4g}  {m['nmse_over_optimum']:>8.3f}")
    used = {m.get("coding") for m in r["members"]}
    for c in CODINGS:  # each coding's note, when a member uses it
        if c.cli_name in used and c.collection_note():
            lines.append(c.collection_note())
    if r["attention"]:
        if r["members"]:
            lines.append("")
        lines.append("attention error (the dump's own keys as queries; relative Frobenius "
                     "error over all heads)")
        lw = max(len(a["layer"]) for a in r["attention"])
        bw = max([6] + [len(_bits_text(a[k])) for a in r["attention"]
                        for k in ("key_bits", "value_bits")])
        lines.append(f"{'layer':<{lw}}  {'k bits':>{bw}}  {'v bits':>{bw}}  {'weights':>9}  "
                     f"{'output':>9}")
        for a in r["attention"]:
            kb, vb = _bits_text(a["key_bits"]), _bits_text(a["value_bits"])
            lines.append(f"{a['layer']:<{lw}}  {kb:>{bw}}  {vb:>{bw}}  "
                         f"{a['weights_rel_error']:>9.4f}  {a['output_rel_error']:>9.4f}")
    return "\n".join(lines)


def evaluate_kv_array(x: np.ndarray, y: np.ndarray, axis: int, name: str = "<array>",
                      bits=None) -> dict:
    """The attention error of a single-array KV dump: `axis` (of length 2) holds keys and
    values; every index of the axes before it is a layer, and the axes after it end in
    (..., tokens, head_dim).  x is the original, y the decoded array."""
    if not 0 <= axis < x.ndim - 2 or x.shape[axis] != 2:
        raise ValueError(f"--kv-axis {axis}: needs an axis of length 2 before the last two "
                         f"(shape {x.shape})")
    lead = x.shape[:axis]
    rows = []
    for idx in np.ndindex(*lead) if lead else [()]:
        k, v = x[idx].take(0, axis=0), x[idx].take(1, axis=0)
        k2, v2 = y[idx].take(0, axis=0), y[idx].take(1, axis=0)
        r = attention_error(k, v, k2, v2)
        r.update(layer=",".join(map(str, idx)) or "-", key_bits=bits, value_bits=bits)
        rows.append(r)
    r = vector_ratios(_flat(_as_float(x), x.shape[-1]), _flat(_as_float(y), x.shape[-1]))
    total = {"nmse": float(r.mean()) if r.size else 0.0, "vectors": int(r.size)}
    return {"input": name, "members": [], "total": total, "attention": rows}


def evaluate_kv_file(input: str, container=None, *, axis: int, bits: float = 4,
                     dataset: str | None = None, memory_limit: int | None = None,
                     max_ratio: float | None = None, **options) -> dict:
    """evaluate_kv_array of the single-array KV dump in the file `input` (`axis`, of length
    2, holds keys and values) against its compression now with `bits` and `options`
    (mode, seed, scale_rule, center), or against the container `container`.  A wrong axis
    is a ValueError; errors name the file."""
    from . import api
    from .. import arrayio
    from ..errors import TqError

    with arrayio.open_input(input, dataset) as src:
        try:
            x = np.concatenate(list(src.blocks(1 << 16))).reshape(src.shape)
        except TqError as e:
            raise e.with_source(src.name)
    try:
        y = api.decompress(container, memory_limit=memory_limit,
                           max_ratio=max_ratio) if container else \
            api.decompress(api.compress(x, bits=bits, **options))
        if y.shape != x.shape:
            raise TqError(f"holds shape {y.shape}, INPUT has {x.shape}")
        return evaluate_kv_array(x, y, axis, input, None if container else bits)
    except TqError as e:
        raise e.with_source(container or input)

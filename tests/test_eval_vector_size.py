"""`tq eval` on a collection cut into vectors by --vector-size: each member's error and its
ratio to the optimum are those of the vectors tq stores (README: nmse over the member's
vectors, "/optimum" the ratio to the Lloyd-Max optimum for its bits), i.e. of D values,
not of the array's last axis.  The expected figures are computed here: the members are
compressed and decoded by `tq compress`/`tq decompress`, the error summed in float64 over
the D-value vectors, and the optimum codebook.expected_distortion(D, bits) -- which at 4
bits differs by several percent between D = 32 and the last axes 128 and 64 used here.
"""

from __future__ import annotations

import json

import numpy as np

from tqcli.codec import codebook

D, BITS = 32, 4


def arrays():
    rng = np.random.default_rng(26)
    return {"wide": rng.standard_normal((64, 128)).astype(np.float32),
            "mid": rng.standard_normal((3, 40, 64)).astype(np.float32)}


def expected(src: dict, back: dict) -> dict:
    out = {}
    for name, x in src.items():
        a = x.astype(np.float64).reshape(-1, D)
        b = back[name].astype(np.float64).reshape(-1, D)
        # README's nmse: the mean over vectors of ||x - x^||^2 / ||x||^2
        nmse = float((((a - b) ** 2).sum(axis=1) / (a * a).sum(axis=1)).mean())
        out[name] = (nmse, nmse / codebook.expected_distortion(D, BITS))
    return out


def test_eval_vector_size_reports_the_ratio_for_the_vectors_stored(tmp_path, tq):
    src = arrays()
    np.savez(tmp_path / "c.npz", **src)
    # the optimum at D differs from the optimum at the last axes by more than the tolerance
    for last in (128, 64):
        gap = abs(codebook.expected_distortion(last, BITS) / codebook.expected_distortion(D, BITS) - 1)
        assert gap > 0.03, (last, gap)
    code, _, err = tq("compress", "c.npz", "-o", "c.tqz", "-b", BITS, "--vector-size", D)
    assert code == 0, err
    code, _, err = tq("decompress", "c.tqz", "-o", "back.npz")
    assert code == 0, err
    with np.load(tmp_path / "back.npz") as z:
        want = expected(src, {k: z[k] for k in z.files})

    for args in (("eval", "c.npz", "-b", BITS, "--vector-size", D, "--coding", "fixed"),
                 ("eval", "c.npz", "c.tqz")):   # fresh, and the file made above
        code, out, err = tq(*args, "--json")
        assert code == 0, err
        members = {m["name"]: m for m in json.loads(out)["members"]}
        assert sorted(members) == sorted(src)
        for name, (nmse, ratio) in want.items():
            m = members[name]
            assert m["vector"] == D and m["bits"] == BITS
            assert abs(m["nmse"] - nmse) <= 1e-9 * nmse, (args, name, m["nmse"], nmse)
            assert abs(m["optimum"] - codebook.expected_distortion(D, BITS)) <= 1e-15
            assert abs(m["nmse_over_optimum"] - ratio) <= 1e-9 * ratio, (args, name, m, ratio)

    # the table shows the same ratio
    code, out, err = tq("eval", "c.npz", "c.tqz")
    assert code == 0, err
    text = out.decode()
    for name, (_, ratio) in want.items():
        line = next(ln for ln in text.splitlines() if ln.split()[:1] == [name])
        assert f"{ratio:.3f}" in line.split(), (line, ratio)

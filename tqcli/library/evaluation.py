"""Distortion and search quality of tq on an array, against its source and the theory.

Two kinds of figure, computed the way their size allows:
  * sums over vectors -- nmse, mean cosine, the inner-product bias -- are streamed over
    every vector of the input: each block of the source is compared with its decoded rows
    and only running sums are kept (Evaluator.add), so memory stays a few blocks whatever
    the input size;
  * search figures -- recall@1, recall@10@10, the inner-product rmse -- need every
    database vector for every query, so they are measured on a sample of rows kept in
    memory (source and decoded), with the queries held out of the sample by the protocol
    of ../shared/data/README.md.  A sample as large as the input is that protocol exactly.

The bias of q.x^ - q.x over pairs of a query and a database vector is linear in the
decoded error, so it is the mean query against the sum of the errors of all database
vectors: the queries, found only when the stream reaches them, can be applied at the end.
Its standard error comes from the spread of the same bias over 64 interleaved groups of
the vectors (row index mod 64): the quantisation noise of one vector is independent of
another's, the rotation (one seed) is shared, so seed-to-seed variation is not in it.
"""

from __future__ import annotations

import math

import numpy as np

from ..codec import codebook
from .. import limits
from . import precompile, search_topk
from ..codec.state import Codec
from ..format.header import make_header
from ..codec.codings import CODINGS
from ..codec.options import EncodeOptions, OptionError
from ..codec.stages import STAGES, fit_stages
from ..errors import InputError

DEFAULT_SAMPLE = 10_000  # rows for the search figures: about a second of search per width
SAMPLE_BUDGET = 160 << 20  # bytes of sample rows (source + every width's decoded rows)
BIAS_GROUPS = 64
SEARCH_BLOCK = 1024  # database rows scored at once: ~8 MB per query-by-block array
SAMPLE_SEED = 2  # the sample is default_rng(2).choice of the rows, in row order
DEFAULT_TARGET_NMSE = 0.01  # the summary line's goal: error at most 1% of the energy


def split_queries(n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out split of ../shared/data/README.md: permutation by default_rng(1)."""
    perm = np.random.default_rng(1).permutation(n)
    return perm[:queries], perm[queries:]


def theory(d: int, bits: int, mode: str) -> dict:
    """Expected normalised error for unit vectors: the Lloyd-Max optimum and 4^-b."""
    if mode == "mse":
        expected = codebook.expected_distortion(d, bits)
    else:
        # mse part of b-1 bits plus the 1-bit sketch: E||r - r_est||^2 ~ (pi/2) ||r||^2
        base = codebook.expected_distortion(d, bits - 1) if bits > 1 else 1.0
        expected = math.pi / 2 * base
    return {"optimum": expected, "lower_bound": 4.0 ** -bits}


def entropy_theory(d: int, step: float) -> dict:
    """The law's expected error of the entropy coding's grid of `step` (its "optimum"
    column: what this rate should give), and 4^-R at the model's rate."""
    from ..codec.codings import entropy_model

    return entropy_model.law_theory(d, step)


def default_sample(n: int, d: int, widths: int) -> int:
    """Rows of the search sample when none is asked for: DEFAULT_SAMPLE, fewer when the
    source rows and `widths` sets of decoded rows would pass SAMPLE_BUDGET."""
    fit = SAMPLE_BUDGET // (4 * d * (widths + 1))
    return int(min(n, DEFAULT_SAMPLE, max(fit, 2)))


def sample_rows(n: int, size: int) -> np.ndarray:
    """Sorted row indices of the search sample: all rows, or `size` drawn without
    replacement by default_rng(SAMPLE_SEED)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(n, size, replace=False))


# ---------------------------------------------------------------------- search


def _top_ids(q: np.ndarray, x: np.ndarray, k: int, rows: np.ndarray,
             block: int = SEARCH_BLOCK) -> np.ndarray:
    """Positions in `rows` (the database rows of x) of the k largest inner products of
    each query, best first, ties by the smaller position: the exact top-k that `tq
    search` computes (search_topk, one implementation), over blocks of `block` rows so
    that memory stays a few queries-by-block arrays."""
    top = search_topk.TopK(q.shape[0], k)
    qn = search_topk.row_norms(q)
    for a in range(0, len(rows), block):
        top.merge(*search_topk.block_topk(q, x[rows[a:a + block]], k, first=a, qn=qn))
    return top.result(len(rows))[0]


class Search:
    """Exact inner-product search of held-out queries over the other rows of `x` (the
    sample), computed once; metrics() compares it with search over decoded rows."""

    def __init__(self, x: np.ndarray, queries: int):
        n = x.shape[0]
        self.queries = int(min(queries, n // 2))
        self.asked = int(queries)
        self.qi, self.di = split_queries(n, self.queries)
        self.k = min(10, len(self.di))
        self.x = x
        self.q = x[self.qi].astype(np.float64)
        self._exact = None

    @property
    def enabled(self) -> bool:
        return self.queries >= 1

    def exact(self) -> np.ndarray:
        if self._exact is None:
            self._exact = _top_ids(self.q, self.x, self.k, rows=self.di)
        return self._exact

    def metrics(self, xh: np.ndarray, block: int = SEARCH_BLOCK) -> dict:
        """recall@1, recall@10@10 and the inner-product error over the sample's pairs."""
        if not self.enabled:
            return {}
        exact = self.exact()
        approx = _top_ids(self.q, xh, self.k, rows=self.di)
        s1 = s2 = 0.0
        for a in range(0, len(self.di), block):
            ids = self.di[a:a + block]
            diff = self.q @ (xh[ids].astype(np.float64) - self.x[ids].astype(np.float64)).T
            s1 += float(diff.sum())
            s2 += float((diff * diff).sum())
        count = self.queries * len(self.di)
        overlap = (exact[:, :, None] == approx[:, None, :]).any(axis=2).sum(axis=1)
        mean = s1 / count
        return {
            "queries": self.queries,
            "ip_bias": mean,
            "ip_rmse": math.sqrt(s2 / count),
            "ip_bias_stderr": math.sqrt(max(s2 / count - mean * mean, 0.0) / count),
            "recall_at_1": float(np.mean(exact[:, 0] == approx[:, 0])),
            "recall_10_at_10": float(np.mean(overlap)) / self.k,
        }


def search_metrics(x: np.ndarray, xh: np.ndarray, queries: int) -> dict:
    """Inner-product error and recall of exact search over decoded vectors (float64), with
    `queries` rows held out of x (at most half of them); {} when there are none."""
    return Search(x, queries).metrics(xh)


# ---------------------------------------------------------------------- streamed sums


class _Sums:
    """Running sums over all vectors for one setting: error ratios, cosines, and the
    decoded error per group of rows (row mod BIAS_GROUPS), for the bias."""

    def __init__(self, d: int):
        self.ratio = self.ratio2 = self.cos = 0.0
        self.rows = self.cos_rows = 0
        self.err = np.zeros((BIAS_GROUPS, d))
        self.count = np.zeros(BIAS_GROUPS, np.int64)

    def add(self, first: int, x: np.ndarray, nx: np.ndarray, xh: np.ndarray) -> None:
        xh = xh.astype(np.float64)
        e = xh - x
        err = np.einsum("ij,ij->i", e, e)
        nh = np.einsum("ij,ij->i", xh, xh)
        dots = np.einsum("ij,ij->i", x, xh)
        nz = nx > 0
        r = err[nz] / nx[nz]
        self.ratio += float(r.sum())
        self.ratio2 += float((r * r).sum())
        self.rows += int(nz.sum())
        ok = nz & (nh > 0)
        self.cos += float((dots[ok] / np.sqrt(nx[ok] * nh[ok])).sum())
        self.cos_rows += int(ok.sum())
        self._add_groups(first, e)

    def _add_groups(self, first: int, e: np.ndarray) -> None:
        g, k = BIAS_GROUPS, e.shape[0]
        head = min((-first) % g, k)  # rows before the next multiple of g
        if head:
            self.err[first % g:first % g + head] += e[:head]
            self.count[first % g:first % g + head] += 1
        whole = (k - head) // g * g
        if whole:
            self.err += e[head:head + whole].reshape(-1, g, e.shape[1]).sum(axis=0)
            self.count += whole // g
        tail = k - head - whole
        if tail:
            self.err[:tail] += e[head + whole:]
            self.count[:tail] += 1

    def distortion(self) -> dict:
        m = self.rows
        nmse = self.ratio / m if m else 0.0
        var = max(self.ratio2 / m - nmse * nmse, 0.0) if m else 0.0
        return {"nmse": nmse,
                "nmse_stderr": math.sqrt(var / (m - 1)) if m > 1 else float("nan"),
                "mean_cosine": self.cos / self.cos_rows if self.cos_rows else 1.0}

    def bias(self, q_mean: np.ndarray, held_rows: np.ndarray, held_err: np.ndarray) -> dict:
        """Mean of q.x^ - q.x over the queries and every row but them, and its standard
        error over the groups (the held-out query rows and their errors are taken out)."""
        err, count = self.err.copy(), self.count.copy()
        groups = held_rows % BIAS_GROUPS
        np.subtract.at(err, groups, held_err)
        np.subtract.at(count, groups, 1)
        n = int(count.sum())
        if n == 0:
            return {}
        per = err @ q_mean
        bias = float(per.sum()) / n
        used = count > 0
        w = count[used] / n
        b_g = per[used] / count[used]
        g = int(used.sum())
        se = math.sqrt(g / (g - 1) * float((w * w * (b_g - bias) ** 2).sum())) if g > 1 \
            else float("nan")
        return {"ip_bias": bias, "ip_bias_stderr": se, "ip_bias_vectors": n}


class Evaluator:
    """Streamed evaluation of `settings` decodings of an n x d source: give it every block
    of the source in order with its decoded rows per setting (add), then ask results()."""

    def __init__(self, n: int, d: int, settings: int, sample: int, queries: int,
                 dtype=np.float32):
        self.n, self.d = n, d
        self.rows = sample_rows(n, sample)
        store = np.float64 if np.dtype(dtype) == np.float64 else np.float32
        self.x = np.empty((len(self.rows), d), store)
        self.xh = [np.empty((len(self.rows), d), np.float32) for _ in range(settings)]
        self.sums = [_Sums(d) for _ in range(settings)]
        self.queries = queries
        self.done = 0

    def add(self, x: np.ndarray, decoded: list[np.ndarray]) -> None:
        first, k = self.done, x.shape[0]
        a, b = np.searchsorted(self.rows, [first, first + k])
        local = self.rows[a:b] - first
        self.x[a:b] = x[local]
        x64 = x.astype(np.float64)
        nx = np.einsum("ij,ij->i", x64, x64)
        for sums, store, xh in zip(self.sums, self.xh, decoded):
            store[a:b] = xh[local]
            sums.add(first, x64, nx, xh)
        self.done += k

    def results(self) -> list[dict]:
        """Per setting: nmse (+ stderr) and cosine over all rows; recall and ip rmse on the
        sample; ip bias (+ stderr) over all rows but the queries."""
        search = Search(self.x, self.queries)
        out = []
        for sums, xh in zip(self.sums, self.xh):
            r = {"sample": int(len(self.rows)), "queries_asked": int(self.queries)}
            r.update(sums.distortion())
            if search.enabled:
                r.update(search.metrics(xh))
                r["ip_bias_sample"] = r.pop("ip_bias")
                r.pop("ip_bias_stderr")
                held = self.rows[search.qi]
                err = xh[search.qi].astype(np.float64) - search.q
                r.update(sums.bias(search.q.mean(axis=0), held, err))
            out.append(r)
        return out


# ---------------------------------------------------------------------- fresh encodings


class FreshEncodings:
    """(source block, [decoded block per setting]) over `source`, each block encoded with
    every setting exactly as compress_to encodes it (same chunks, same centre: the mean of
    the first chunk) and decoded at once.  `headers` holds the headers once iterated.

    settings: an EncodeOptions per setting (center True or False).
    """

    def __init__(self, source, settings: list, scale_dtype: str = "float32"):
        self.source, self.settings, self.scale_dtype = source, settings, scale_dtype
        self.headers: list = []
        self.payload_bytes = [0] * len(settings)  # per setting, over the chunks so far

    def __iter__(self):
        src = self.source
        codecs, early = None, []
        row = 0
        for block in src.blocks(limits.default_chunk_rows(src.dim)):
            if codecs is None:
                self.headers = _headers(src, self.settings, block, self.scale_dtype)
                codecs = [Codec(h) for h in self.headers]
                # on first use, the decoder compiles in another process meanwhile
                early = [precompile.decoder_early(h) for h in
                         {(h.mode, h.scale_dtype, h.coding): h for h in self.headers}.values()]
            encoded = [codec.encode_chunks(block, row)[0] for codec in codecs]
            for j, parts in enumerate(encoded):
                self.payload_bytes[j] += sum(len(p) for p in parts)
            for pending in early:
                pending.wait()
            early = []
            decoded = [codec.decode(b"".join(parts), block.shape[0])
                       for codec, parts in zip(codecs, encoded)]
            row += block.shape[0]
            yield block, decoded


def _headers(source, settings: list, first: np.ndarray, scale_dtype: str) -> list:
    """The header of each setting (an EncodeOptions), its fitted stages fitted once from
    the first block, as compress_to fits them (stages.fit_stages)."""
    built, fitted = [], {}
    for opts in settings:
        if opts.adapt is True:  # the adaptive coding's basis, fitted as compress fits it
            from ..codec import adaptive_model

            opts = adaptive_model.fitted_options(opts, first, source.dim)
        wanted = tuple(s.name for s in STAGES if s.wanted(opts))
        if not isinstance(opts.center, bool):  # a centre given (an adaptive basis's mean)
            wanted += (opts.center.tobytes(),)
        if wanted and wanted not in fitted:
            fitted[wanted] = fit_stages(opts, first)
        try:
            h = make_header(source.dim, opts, scale_dtype=scale_dtype,
                            source_dtype=source.dtype.newbyteorder("=").name,
                            shape=source.shape, fitted=fitted.get(wanted))
            h.validate()
        except OptionError:
            raise
        except ValueError as e:
            raise InputError(str(e)) from None
        built.append(h)
    return built


def file_bytes_of(header, payload_bytes: int) -> int:
    """The length of a container of `header` whose chunk payloads total payload_bytes."""
    from ..format.header import CRC, FOOTER, INDEX_ENTRY

    k = header.n_chunks
    return header.header_size + payload_bytes + (CRC.size + INDEX_ENTRY.size) * k + FOOTER.size


def finish_report(r: dict, header, file_bytes: int, centered: bool,
                  requested: float | None = None) -> dict:
    """One evaluation dict: the streamed figures r with the setting, theory and sizes
    (`requested`: the rate an entropy-coded setting asked for, its "bits")."""
    n, d = header.n_vectors, header.dim
    coding = header.payload_coding
    out = {"bits": header.bits, "mode": header.mode, "vectors": int(n), "dim": int(d),
           "coding": coding.cli_name}
    out.update(r)
    fields = coding.eval_fields(header, file_bytes - file_bytes_of(header, 0), requested)
    if fields is not None:
        out.update(fields)
    else:
        out.update(theory(d, header.bits, header.mode))
    out["nmse_vs_optimum"] = out["nmse"] / out["optimum"]
    out["bytes"] = int(file_bytes)
    out["bytes_per_vector"] = file_bytes / n
    out["ratio_vs_float32"] = 4 * n * d / file_bytes
    out["ratio_vs_original"] = limits.SOURCE_DTYPE_SIZES[header.source_dtype] * n * d \
        / file_bytes
    out["centered"] = centered
    return out


def theory_curve(d: int, n: int, mode: str, scale_dtype: str = "float32") -> list[dict]:
    """Per b = 1..8: the optimum and the bytes per vector of a file of n such vectors."""
    out = []
    for b in range(1 if mode == "mse" else 2, limits.MAX_BITS + 1):
        h = make_header(d, EncodeOptions(bits=b, mode=mode), shape=(n, d),
                        scale_dtype=scale_dtype)
        out.append(dict(theory(d, b, mode), bits=b, bytes_per_vector=h.file_size / n))
    return out


# ---------------------------------------------------------------------- recommendation


def recommend(reports: list[dict], target_nmse: float | None = None,
              target_recall: float | None = None) -> dict:
    """The smallest evaluated setting (fewest bytes per vector, whichever the coding;
    uncentred before centred at equal size) whose measured nmse and recall@1 meet the
    targets.  Without targets,
    the goal is nmse <= DEFAULT_TARGET_NMSE: an error of 1% of the vectors' energy, a
    cosine of about 0.995, measured over all vectors (not a sample) and nearly
    independent of the data, which recall is not."""
    default = target_nmse is None and target_recall is None
    if default:
        target_nmse = DEFAULT_TARGET_NMSE
    goals = []
    if target_nmse is not None:
        goals.append(("nmse", target_nmse))
    if target_recall is not None:
        goals.append(("recall_at_1", target_recall))

    def meets(r):
        return all((r.get(k) is not None) and (r[k] <= t if k == "nmse" else r[k] >= t)
                   for k, t in goals)

    order = sorted(reports, key=lambda r: (r["bytes_per_vector"], r.get("centered", False)))
    best = next((r for r in order if meets(r)), None)
    out = {"default": default, "goals": {k: t for k, t in goals}, "met": best is not None}
    if best is not None:
        out.update(bits=best["bits"], mode=best["mode"], centered=bool(best.get("centered")),
                   coding=best.get("coding", CODINGS.default.cli_name),
                   bytes_per_vector=best["bytes_per_vector"],
                   measured={k: best[k] for k, _ in goals})
    return out


def entropy_rate_for_nmse(d: int, nmse: float) -> float | None:
    """The smallest rate, in hundredths of a bit, at which the entropy coding's expected
    error (the law's, for the grid compress -b R --coding entropy builds) is at most
    `nmse`: the one entropy-coded setting eval adds for an nmse goal, since the coding's
    rate is continuous and the integer widths alone would miss the smallest file that
    meets the goal.  None when no rate from 1 to 8 bits does."""
    from ..codec.codings import entropy_model as em
    from ..codec.codings.entropy_model import rate_overhead

    overhead = rate_overhead(d)  # as the header of `-b R --coding entropy` sets it aside
    rate = math.ceil((em.rate_for_nmse(d, nmse) + overhead) * 100) / 100
    for _ in range(8):  # the rounding of the bisection: step up until the law agrees
        rate = max(rate, em.MIN_RATE)
        if rate > em.MAX_RATE:
            return None
        if em.nmse_of(d, em.model_for(d, rate=rate, overhead=overhead).step) <= nmse:
            return rate
        rate = round(rate + 0.01, 2)
    return None


def input_problem(input: str, container) -> str | None:
    """Why `tq eval INPUT [FILE.tqz]` cannot start, when INPUT is a compressed file: eval
    needs the source array first (the .tqz, if any, second)."""
    import os

    from ..format.header import MAGIC

    if input == "-" or not isinstance(input, str):
        return None
    usage = ("eval needs INPUT [FILE.tqz]: the source array first (.npy, HDF5, "
             ".safetensors, .npz, zarr), then optionally a .tqz made from it, e.g. "
             "tq eval x.npy x.npy.tqz")
    if not os.path.exists(input):
        return f"no such file; {usage}" if input.endswith(".tqz") and container is None \
            else None
    try:
        with open(input, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError:
        return None
    if head == MAGIC:
        return f"is a compressed .tqz file; {usage}"
    return None

"""Which rows the encoder fits its basis on, and `adapt="auto"`'s decision (issue 24; spec
section 22).

    resolve(source, options, blocks_of) -> (options, blocks, first, decision)

for options whose `adapt` is True or "auto" (anything else passes through):

  - a source that can be read twice (a regular file, an array in memory) is fitted on
    fitting.sample_of its rows -- every row when n <= fit_rows(d), else fit_rows(d) rows
    evenly spaced over the whole file -- in one sequential pass, and the encoder then reads
    it again from the start (blocks None);
  - a stream (a pipe) is fitted on its first batch (adaptive_model.batch_rows rows), which
    the encoder then codes first (blocks: the rest of the stream, first: that batch).
    A file of at most min(fit_rows(d), batch_rows) rows is fitted on the same rows either
    way, so file and pipe give the same bytes (spec 22.1);
  - adapt="auto" then asks codec.adapt_decision whether the basis pays; if not, the options
    are returned with adapt=False and the file is byte for byte what they write without it.

decision is the adapt_decision.Decision (None when adapt was True or a Basis).
"""

from __future__ import annotations

import numpy as np

from ..codec import adapt_decision, adaptive_model, fitting
from ..errors import InputError

READ_BYTES = 1 << 24  # float32 bytes per read of the sample pass (16 MiB)


def read_rows(dim: int) -> int:
    """Rows per read of a file's sample pass."""
    return max(64, READ_BYTES // (4 * dim))


def fit_rows(dim: int) -> int:
    """Rows a file's fit reads at most: 32768, fewer at large d so that the sums stay near
    2^33 multiply-adds (~10 s on the development VM), never fewer than 4 d."""
    return int(min(fitting.FIT_ROWS, max(4 * dim, (1 << 33) // (dim * dim))))


def _fit(source, options, blocks_of):
    """(basis, blocks, first, inverse): the basis, what the encoder still has to read, and
    the rows' (mean 1/|x|^2, mean x/|x|^2) for the decision (adapt_decision.decide)."""
    d, n = source.dim, source.n_rows
    acc, s1 = np.zeros(2), np.zeros(d)
    if getattr(source, "rereadable", False) and n > 0:
        sample = fitting.sample_of(blocks_of(min(read_rows(d), n)), n, cap=fit_rows(d),
                                   positions=True)
        basis = adaptive_model.fit_basis(_finite(sample, acc, s1))
        return basis, None, None, _means(acc, s1)
    blocks = blocks_of(adaptive_model.batch_rows(d, options))
    first = next(blocks, None)
    if first is None or first.shape[0] == 0:
        basis = adaptive_model.Basis(mean=np.zeros(d, np.float32), components=np.eye(d),
                                     variances=np.zeros(d), rows=0)
    else:
        rows = np.arange(first.shape[0])
        basis = adaptive_model.fit_basis(_finite([(rows, first)], acc, s1))
    return basis, blocks, first, _means(acc, s1)


def _finite(sample, acc, s1):
    """The sample's rows, refusing a non-finite one by its row number in the file (the
    encoder would refuse it too, later; the fit must not turn it into a basis first), and
    adding up kernels.spectrum.inverse_energy into acc, s1 on the way."""
    from ..kernels import spectrum as ks

    for pos, rows in sample:
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            raise InputError(f"row {int(pos[int(np.argmax(bad))])}: contains NaN or "
                             f"infinite values", kind="non-finite")
        if rows.shape[0]:
            rows = np.ascontiguousarray(rows)
            ks.inverse_energy(rows, acc, s1)
            yield rows


def _means(acc, s1):
    return (acc[0] / acc[1], s1 / acc[1]) if acc[1] else None


def predicted(basis, chunk_rows: int, bits=None, nmse=None):
    """adaptive(n) for adapt_decision.decide: (predicted nmse, total bytes) of the adaptive
    coding of n vectors fitted as `basis`, for the target bits or nmse."""
    def adaptive(n):
        model = adaptive_model.plan(basis, n, chunk_rows, bits=bits, nmse=nmse)
        block = adaptive_model.header_block_size(
            model.k, basis.dim, model.basis_dtype, [len(c) for c in model.codebooks])
        return model.nmse, block + n * model.rate / 8
    return adaptive


def decide(basis, n: int, options, inverse=None):
    """adapt_decision.decide for `options` (adapt "auto") and the fitted basis."""
    from .. import limits

    if adaptive_model.dim_problem(basis.dim) or options.mode != "mse":
        return adapt_decision.Decision(False, "the adaptive coding does not take this data")
    chunk = options.chunk_rows or limits.default_chunk_rows(basis.dim)
    bits = None if options.nmse is not None else options.bits
    return adapt_decision.decide(basis, n, coding=options.coding, bits=bits,
                                 nmse=options.nmse, centered=bool(options.centered),
                                 adaptive=predicted(basis, chunk, bits, options.nmse),
                                 inverse=inverse)


def fit_need(source, options) -> int:
    """Bytes the fit holds at its peak besides the encoder: fitting.fit_memory (the sums,
    the eigenvector work space, the result) and the blocks it reads (a file: read_rows(d)
    rows and the rows picked from them; a pipe: its first batch; float64 at worst)."""
    d = source.dim
    rows = read_rows(d) if getattr(source, "rereadable", False) else \
        adaptive_model.batch_rows(d, options)
    return fitting.fit_memory(d) + 2 * rows * d * 8


def check_fit_memory(source, options, limit) -> None:
    """Refuse (InputError, kind "memory") a fit that would pass the budget, before it
    starts (limit None: no limit)."""
    from .. import limits

    if limit is None:
        return
    need = fit_need(source, options)
    if need > limit:
        raise InputError(f"fitting a basis needs {limits.format_size(need)} (vectors of "
                         f"{source.dim} values), above the memory limit of "
                         f"{limits.format_size(limit)} (raise it with --memory)",
                         kind="memory")


def resolve(source, options, blocks_of, memory_limit=None):
    """See the module docstring.  memory_limit: the encoder's budget, which the fit must
    fit in too (check_fit_memory)."""
    if options.adapt is not True and options.adapt != "auto":
        return options, None, None, None
    auto = options.adapt == "auto"
    if auto and (adaptive_model.dim_problem(source.dim) or options.mode != "mse"):
        return options.replace(adapt=False), None, None, adapt_decision.Decision(
            False, "the adaptive coding does not take this data")
    check_fit_memory(source, options, memory_limit)
    basis, blocks, first, inverse = _fit(source, options, blocks_of)
    decision = None
    if auto:
        decision = decide(basis, source.n_rows, options, inverse)
        if not decision.adapt:
            return options.replace(adapt=False), blocks, first, decision
        options = options.replace(coding=_adaptive_coding(), scale_rule=None,
                                  scale_dtype="auto")
    return options.replace(adapt=basis, center=False), blocks, first, decision


def _adaptive_coding() -> str:
    from ..codec.codings import CODINGS

    return next(c for c in CODINGS if c.data_fitted).name


def eval_settings(source, bits, blocks_of, seed: int = 0):
    """tq eval --adapt: (settings, decisions), an EncodeOptions of the adaptive coding per
    rate b with the basis compress fits (the same sample), and what adapt="auto" decides
    at each b (against the oblivious rotation with default options).  A stream would have
    to be read twice: refused (InputError)."""
    from ..codec.options import EncodeOptions

    if not getattr(source, "rereadable", False):
        raise InputError("eval --adapt reads its input twice (the fit, then the coding): "
                         "give a file, not a pipe")
    problem = adaptive_model.dim_problem(source.dim)
    if problem:
        raise InputError(problem)
    basis, _, _, inverse = _fit(source, EncodeOptions(adapt=True), blocks_of)
    settings, decisions = [], []
    for b in bits:
        settings.append(EncodeOptions(bits=b, seed=seed, adapt=basis))
        coding = (None if float(b).is_integer()  # what -b b takes
                  else adapt_decision.rated_coding())
        decisions.append(decide(basis, source.n_rows, EncodeOptions(
            bits=b, seed=seed, adapt="auto", **({"coding": coding} if coding else {})),
            inverse))
    return settings, decisions

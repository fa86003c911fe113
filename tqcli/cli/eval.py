"""tq eval: distortion and search quality of tq on an input against the theory, and the
smallest setting that meets a goal."""

from __future__ import annotations

import json
import os

import click

from .. import limits
from ..errors import TqError
from . import process
from .options import (
    CONTEXT,
    _bit_list,
    _warner,
    coding_choices,
    common_max_ratio,
    common_memory,
    common_progress,
    common_threads,
    encode_options,
    parse_bit_list,
)
from .progress import _Progress, _progress_enabled

EVAL_DEFAULT_BITS = "2,3,4"
EVAL_TARGET_BITS = "1-8"  # with a target and no -b: every width, to find the smallest


@click.command("eval", context_settings=CONTEXT)
@click.argument("input", metavar="INPUT")
@click.argument("container", metavar="[FILE.tqz]", required=False)
@click.option("-b", "--bits", default=None, callback=_bit_list, metavar="LIST",
              help=f"Bit widths to evaluate: 2,3,4, 1-4 or 1-3,8 (default {EVAL_DEFAULT_BITS}; "
                   f"{EVAL_TARGET_BITS} with a target).")
@click.option("--mode", type=click.Choice(limits.MODES), default=limits.DEFAULT_MODE,
              show_default=True)
@click.option("--coding", type=click.Choice(coding_choices(("both",))), default=None,
              help="Codings to evaluate at each -b, the entropy coding at rate b (about the "
                   "same bytes) [default: both in mse mode, fixed in prod mode].")
@click.option("--seed", type=click.IntRange(0, limits.MAX_SEED), default=limits.DEFAULT_SEED,
              show_default=True)
@click.option("--scale", "scale_rule", type=click.Choice(limits.SCALE_RULES), default=None)
@click.option("--queries", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Query vectors held out of the sample for the search figures (at most "
                   "half the sample).")
@click.option("--sample", type=click.IntRange(min=1), default=None, metavar="N",
              help="Vectors for the search figures (recall, ip rmse); default 10000, fewer "
                   "for wide vectors. nmse and ip bias always cover every vector.")
@click.option("--target-nmse", type=click.FloatRange(0, 1, min_open=True), default=None,
              metavar="X", help="Print the smallest setting whose measured nmse is <= X.")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True), default=None,
              metavar="R", help="Print the smallest setting whose measured recall@1 is >= R.")
@click.option("--center", is_flag=True,
              help="Also evaluate with mean-centring (compress --center), row beside row.")
@click.option("--dataset", metavar="PATH", help="HDF5 dataset to read.")
@click.option("--bits-for", "bits_for", metavar="PATTERN=B", multiple=True,
              help="Collections: bits per member, as for compress.")
@click.option("--lossless", metavar="PATTERN", multiple=True,
              help="Collections: members stored losslessly, as for compress.")
@click.option("--vector-size", type=click.IntRange(limits.MIN_DIM, limits.MAX_DIM),
              default=None, metavar="D", help="Collections: vectors of D values, as for "
              "compress.")
@click.option("--kv-axis", type=click.IntRange(min=0), default=None, metavar="AXIS",
              help="A single-array KV dump: AXIS (of length 2) holds keys and values; "
                   "report the attention error per layer (the axes before AXIS).")
@click.option("--plot", metavar="FILE.png", help="Also draw error and recall against bytes "
              "per vector, with the theory (needs the plot extra: matplotlib).")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing --plot file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_progress
@common_memory
@common_max_ratio
@common_threads
def eval_cmd(input, container, bits, mode, coding, seed, scale_rule, queries, sample,
             target_nmse,
             target_recall, center, dataset, bits_for, lossless, vector_size, kv_axis, plot,
             force, as_json, progress, memory_limit, max_ratio, threads):
    """Report distortion and search quality of tq on INPUT against the theory, and the
    smallest setting that meets a goal.

    With FILE.tqz, evaluate that container against its source INPUT instead (it has its
    own settings: -b, --mode, --seed, --scale, --center and targets are refused).
    """
    ctx = click.get_current_context()
    if container is not None:
        given = [f"--{p.replace('_rule', '').replace('_', '-')}" if p != "bits" else "-b"
                 for p in ("bits", "mode", "coding", "seed", "scale_rule", "center",
                           "target_nmse", "target_recall")
                 if ctx.get_parameter_source(p) != click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be used with FILE.tqz: the "
                                   f"container has its own settings")
    from ..library import evaluation

    problem = evaluation.input_problem(input, container)
    if problem:
        raise TqError(problem, input)
    probe = process.load_fileio().probe_input(input, dataset)
    if probe.collection:  # per member, in total, and attention for key/value pairs
        _eval_collection((probe.path, probe.group), container, bits, mode, seed, scale_rule,
                         center, bits_for, lossless, vector_size, as_json, memory_limit,
                         threads, max_ratio)
        return
    if bits_for or lossless or vector_size:
        raise click.UsageError("--bits-for, --lossless and --vector-size apply to "
                               "collections (HDF5, .safetensors, .npz input)")
    if kv_axis is not None:
        _eval_kv_array(input, container, kv_axis, bits, mode, seed, scale_rule, center,
                       dataset, as_json, memory_limit, threads, max_ratio)
        return
    targeted = target_nmse is not None or target_recall is not None
    widths_given = bits is not None
    if bits is None:
        bits = parse_bit_list(EVAL_TARGET_BITS if targeted else EVAL_DEFAULT_BITS)
    encode_options(mode=mode, scale_rule=scale_rule)
    from ..codec.codings import CODINGS

    if coding is None:  # every coding the mode allows, but a fitted one (--coding adaptive)
        chosen = [c for c in CODINGS if mode in c.modes and not c.data_fitted]
    else:
        chosen = list(CODINGS) if coding == "both" else [CODINGS.resolve(coding)]
        for c in chosen:
            if mode not in c.modes:
                raise click.BadParameter(f"the {c.cli_name} coding is defined for "
                                         f"{' or '.join(c.modes)} mode only",
                                         param_hint="--coding")
    codings = tuple(c.cli_name for c in chosen)
    fractional = [c.cli_name for c in CODINGS if c.fractional_rates]
    if any(not float(b).is_integer() for b in bits) and \
            not any(c.fractional_rates for c in chosen):
        raise click.BadParameter("a fractional rate needs a coding that takes one "
                                 f"(--coding {' or '.join(fractional)})",
                                 param_hint="'-b' / '--bits'")
    if plot is not None:
        from ..library import plot as plotting

        plotting.require()
        if os.path.exists(plot) and not force:
            raise TqError("already exists; use -f to overwrite", plot)
    if target_recall is not None and queries == 0:
        raise click.UsageError("--target-recall needs queries (--queries > 0)")
    if not widths_given and any(c.target_error for c in chosen) and container is None:
        bits = _with_target_rate(input, dataset, bits, target_nmse, target_recall)
    api = process.load_library()
    process.start_engine(threads)
    with _Progress(_progress_enabled(progress, False), "eval") as bar:
        reports = api.evaluate_file(input, container, bits=bits, mode=mode, seed=seed,
                                    scale_rule=scale_rule, queries=queries, dataset=dataset,
                                    center=center, memory_limit=memory_limit,
                                    max_ratio=max_ratio, sample=sample,
                                    codings=codings, progress=bar)
    from ..library import evaluation, report

    rec = None if container is not None else evaluation.recommend(
        reports, target_nmse=target_nmse, target_recall=target_recall)
    if plot is not None:
        _write_plot(plot, force, input, reports)
    if as_json:
        out = {"input": input, "results": reports}
        if rec is not None:
            out["recommendation"] = rec
        click.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console

    console = Console(width=100, highlight=False, soft_wrap=False)
    console.print(report.eval_heading(input if container is None else container, reports),
                  markup=False)
    console.print(report.eval_table(input, reports))
    console.print(report.eval_legend(reports), markup=False)
    if rec is not None:
        console.print(report.recommendation_text(rec, reports, input), markup=False)


def _with_target_rate(input, dataset, bits, target_nmse, target_recall) -> list:
    """Without -b, eval also measures the entropy coding at the rate whose expected error
    meets the nmse goal (evaluation.entropy_rate_for_nmse), so that its suggestion can be
    the smallest file meeting it whichever the coding.  A pipe cannot be opened twice to
    learn d first: there, only the widths."""
    from .. import arrayio
    from ..library import evaluation

    if input == "-" or (target_nmse is None and target_recall is not None):
        return bits
    try:
        with arrayio.open_input(input, dataset) as src:
            d = src.dim
    except TqError:
        return bits  # evaluate_file says what is wrong with the input
    rate = evaluation.entropy_rate_for_nmse(
        d, evaluation.DEFAULT_TARGET_NMSE if target_nmse is None else target_nmse)
    return bits if rate is None or rate in bits else sorted(bits + [rate])


def _eval_collection(coll, container, bits, mode, seed, scale_rule, center, bits_for,
                     lossless, vector_size, as_json, memory_limit, threads,
                     max_ratio=None) -> None:
    from ..library import collection_eval

    if bits is not None and len(bits) != 1:
        raise click.UsageError("a collection is evaluated at one -b (and --bits-for)")
    if container is not None and (bits_for or lossless or vector_size):
        raise click.UsageError("--bits-for, --lossless and --vector-size cannot be used with "
                               "FILE.tqz: the container has its own settings")
    process.load_library()
    process.start_engine(threads)
    try:
        r = collection_eval.evaluate_collection(
            coll[0], container, group=coll[1], bits=bits[0] if bits else limits.DEFAULT_BITS,
            bits_for=bits_for, lossless=lossless, vector_size=vector_size, mode=mode,
            seed=seed, scale_rule=scale_rule, center=center, memory_limit=memory_limit,
            max_ratio=max_ratio, **({} if container is not None else {"warn": _warner(coll[0])}))
    except TqError as e:
        raise e.with_source(container or coll[0])
    click.echo(json.dumps(r, indent=2) if as_json else collection_eval.report_text(r))


def _eval_kv_array(input, container, axis, bits, mode, seed, scale_rule, center, dataset,
                   as_json, memory_limit, threads, max_ratio=None) -> None:
    from ..library import collection_eval

    if bits is not None and len(bits) != 1:
        raise click.UsageError("--kv-axis evaluates one -b")
    process.load_library()
    process.start_engine(threads)
    try:
        r = collection_eval.evaluate_kv_file(
            input, container, axis=axis, bits=bits[0] if bits else limits.DEFAULT_BITS,
            dataset=dataset, memory_limit=memory_limit, max_ratio=max_ratio, mode=mode,
            seed=seed,
            scale_rule=scale_rule, center=center)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--kv-axis") from None
    click.echo(json.dumps(r, indent=2) if as_json else collection_eval.report_text(r))


def _write_plot(path: str, force: bool, input: str, reports: list[dict]) -> None:
    from ..arrayio import files
    from ..library import evaluation
    from ..library import plot as plotting

    r0 = reports[0]
    curve = evaluation.theory_curve(r0["dim"], r0["vectors"], r0["mode"])
    try:
        with files.open_output(path, force) as sink:
            plotting.eval_plot(sink.stream, f"{input}: {r0['vectors']} x {r0['dim']}, "
                               f"mode {r0['mode']}", reports, curve)
            sink.commit()
    except TqError as e:
        raise e.with_source(path)

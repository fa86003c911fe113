"""What decoding a header costs in memory, counted from the header alone (spec 13.7).

tq refuses a file whose decoding would allocate more than the budget (--memory, default
256 MiB) before it allocates any of it.  The count is an upper bound of what tq's decoder
really holds at its peak, not only of the format's own state: every buffer a chunk passes
through on its way to an output is in it, as are the kernels' per-thread scratch and the
temporaries of building the rotation.  Each term names where the bytes are allocated, so
that a change there changes the count with it (tests/test_memory_budget.py measures the
peak resident memory of the commands against it).

Terms, for a chunk of r = min(R, n) rows of d values (w = 8 with float64 scales, else 4):

  tables     8 T d + 20 T B   the rotation plan (codec/rotations/base.py plan_bytes)
  build      32 d + 4096      numpy temporaries while the plan is built (prng streams)
  sketch     4 d^2            prod mode's S (codec/state.py make_sketch)
  payload    2 p (P(r) + 4)   the chunk's bytes; a stream joins its pieces once; p = 2
                              chunks decoded at once while small (decode_pipelines)
  coding     p coding state   the entropy coding's symbols and slot table
  decoded    k w r d          k chunk buffers in turn (decoding_buffers: 3 while small;
                              p = 2 decoding threads hold one each)
  scratch    m s              m = min(threads, tasks of r rows) kernel tasks at once, each
                              s bytes (the coding's kernel_scratch_bytes)
  pieces     3 min(max(PIECE, 8 d), 8 r d)
                              the finiteness check and the cast to the output dtype,
                              done in pieces of at most PIECE bytes (or one row)
  stages     4 d              the centre of a centred file
"""

from __future__ import annotations

from .. import limits

LANES = 8             # rows per kernel group (tqcli/kernels/lanes.py LANES)
GROUPS_PER_TASK = 16  # groups per kernel task (tqcli/kernels/groups.py GROUPS_PER_TASK)
PIECE = 1 << 22       # bytes a checked or cast piece of a decoded block holds at most
OVERLAP_BYTES = 1 << 24  # decoded chunks up to this size get three buffers (overlapped writes)
BUILD_BYTES_PER_D = 32
BUILD_FIXED = 4096


def task_count(rows: int) -> int:
    """Kernel tasks for `rows` rows (tqcli/kernels/groups.py task_count)."""
    groups = -(-rows // LANES)
    return -(-groups // GROUPS_PER_TASK)


PIPELINES = 2  # chunks decoded (or batches encoded) at once by threads of their own


def decode_pipelines(header, threads: int) -> int:
    """Threads that each decode a chunk of their own and write it in turn
    (TqFile.decode_runs): PIPELINES while a decoded chunk is at most OVERLAP_BYTES and
    two threads may run, else 1 (one decoder, as decoding_buffers says)."""
    return PIPELINES if threads >= 2 and chunk_bytes(header) <= OVERLAP_BYTES else 1


def encode_pipelines(header, threads: int) -> int:
    """Threads that each encode a batch of their own and write it in turn
    (library/api.py _compress_once): PIPELINES when two threads may run and a batch
    (batch_chunks) has a chunk for each, else 1."""
    return PIPELINES if threads >= 2 and batch_chunks(header) >= PIPELINES else 1


def pipe_batch_chunks(header, threads: int) -> int:
    """Chunks of one encoding thread's batch: the batch shared among the
    encode_pipelines threads, so that together they hold what one batch is."""
    return batch_chunks(header) // encode_pipelines(header, threads)


def decoding_buffers(header) -> int:
    """Chunk buffers a decoder writing to a file uses in turn: 3 (one decoded while the
    writer holds another) when a decoded chunk is at most OVERLAP_BYTES, else 1 (the
    writes are then made in turn with the decoding)."""
    return 3 if chunk_bytes(header) <= OVERLAP_BYTES else 1


def chunk_bytes(header) -> int:
    """Bytes of one decoded chunk (binary32, or binary64 with float64 scales)."""
    rows = min(header.chunk_rows, header.n_vectors)
    return rows * header.dim * (8 if header.scale_dtype == "float64" else 4)


def piece_rows(dim: int, itemsize: int) -> int:
    """Rows of a piece of at most PIECE bytes (at least one row)."""
    return max(1, PIECE // max(1, dim * itemsize))


def decode_terms(header, workers: int | None = None) -> dict:
    """The terms of the module docstring, in bytes (all 0 when the file holds no vector:
    nothing is built).  workers: threads the kernels may use (None: limits.thread_limit)."""
    if header.n_vectors == 0:
        return {}
    d, rows = header.dim, min(header.chunk_rows, header.n_vectors)
    coding = header.payload_coding
    threads = limits.thread_limit() if workers is None else workers
    tasks = max(1, min(threads, task_count(rows)))
    pipes = decode_pipelines(header, threads)  # each with its payload and coding state
    return {
        "tables": header.rotation_kind.plan_bytes(d, header.rounds),
        "build": BUILD_BYTES_PER_D * d + BUILD_FIXED,
        "sketch": 4 * d * d if header.mode == "prod" else 0,
        "payload": pipes * 2 * (coding.max_payload_size(header, rows) + 4),
        "coding": pipes * coding.decode_state_bytes(header, rows),
        "decoded": decoding_buffers(header) * chunk_bytes(header),
        "scratch": tasks * coding.kernel_scratch_bytes(header),
        "pieces": 3 * min(max(PIECE, 8 * d), 8 * rows * d),
        "stages": _stage_bytes(header),
    }


def decode_need(header, workers: int | None = None) -> int:
    """Bytes tq's decoder holds at its peak for this header, beyond the interpreter's own."""
    return sum(decode_terms(header, workers).values())


# ---------------------------------------------------------------------- encoding

BATCH_INPUT_BYTES = 1 << 24  # float32 input per kernel call when compressing (16 MiB)


def batch_chunks(header) -> int:
    """Chunks the encoder passes to the kernels at once (library/api.py _compress_once)."""
    return max(1, BATCH_INPUT_BYTES // (header.chunk_rows * header.dim * 4))


def encode_terms(header, itemsize: int = 8, workers: int | None = None) -> dict:
    """What compressing rows of `itemsize` bytes per value under this header holds at its
    peak, beyond the interpreter: a batch of input rows as read and joined by a
    collection's reblocking (twice), widened to binary32 (float16, bfloat16) or centred in
    binary64 as the kernels take it (a batch shared among the encode_pipelines threads,
    pipe_batch_chunks each), the rotation and prod mode's sketch with its transpose, the
    kernels' scratch, and the payloads of three batches (at most one per thread, waiting
    for its turn to be written)."""
    d = header.dim
    n = max(header.n_vectors, 1)
    coding = header.payload_coding
    threads = limits.thread_limit() if workers is None else workers
    pipes = encode_pipelines(header, threads)  # each with a batch of its own
    per = pipe_batch_chunks(header, threads) * header.chunk_rows
    rows = min(per * pipes, max(n, header.chunk_rows))  # input rows held at once
    tasks = max(1, min(threads, task_count(rows)))
    chunks = -(-rows // header.chunk_rows)
    return {
        "input": rows * d * (2 * itemsize + (4 if itemsize < 4 else 0)
                             + (8 if header.centered else 0)),
        "tables": header.rotation_kind.plan_bytes(d, header.rounds),
        "build": BUILD_BYTES_PER_D * d + BUILD_FIXED,
        "sketch": 8 * d * d if header.mode == "prod" else 0,
        "scratch": tasks * coding.encode_scratch_bytes(header),
        "coding": pipes * coding.decode_state_bytes(header, min(per, rows)) + 16 * rows,
        "payloads": 3 * chunks * (coding.max_payload_size(header, header.chunk_rows) + 4),
        "stages": _stage_bytes(header),
    }


def _stage_bytes(header) -> int:
    """The fitted stages' parameters (the centre: 4 d)."""
    from ..codec.stages import STAGES

    return sum(stage.block_size(header.dim) for stage, _ in STAGES.present(header))


def encode_need(header, itemsize: int = 8, workers: int | None = None) -> int:
    """Bytes tq's encoder holds at its peak for this header and input width."""
    return sum(encode_terms(header, itemsize, workers).values())


def check_encode(header, itemsize: int, limit: int | None, reading: int = 0) -> None:
    """Refuse (InputError, kind "memory") to compress under a header whose encoding needs
    more than `limit` bytes (None: no limit), before anything is built or written;
    `reading`: what the source holds beyond a block (an HDF5 chunk inflated whole)."""
    from ..errors import InputError

    if limit is None:
        return
    need = encode_need(header, itemsize) + reading
    if need > limit:
        how = (f"the input's filtered HDF5 chunks of {limits.format_size(reading // 2)}, "
               f"inflated whole to read a row, and " if reading else "")
        raise InputError(f"compressing needs {limits.format_size(need)} ({how}vectors of "
                         f"{header.dim} values in chunks of {header.chunk_rows}), above the "
                         f"memory limit of {limits.format_size(limit)} (raise it with "
                         f"--memory{'' if reading else ', or lower --chunk-rows'})",
                         kind="memory")

"""Compiling a decoder in a second process while this one compiles the encoder.

`tq eval` encodes and then decodes every block, so on first use it needs two kernels
compiled.  numba compiles one function at a time per process (a global lock, and most of
the work holds the GIL), so the second would wait for the first.  decoder_early(header)
starts `python -m tqcli.library.precompile`, which reads the header on stdin and decodes one chunk
of zeros under it: the same argument types as the real calls, hence the same compiled
kernel, which numba writes to its cache.  The caller waits for it (Pending.wait) before its
own first decode, which then loads the kernel from the cache.  On a machine with one core,
when the kernel is already cached, or when anything about the child fails, nothing is
started or the caller simply compiles the kernel itself: the results never depend on it.
"""

from __future__ import annotations

import os
import subprocess
import sys


class Pending:
    """A precompiling child process (or nothing); wait() before using the kernel."""

    def __init__(self, proc: subprocess.Popen | None = None):
        self.proc = proc

    def wait(self, timeout: float = 300.0) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass  # the caller compiles for itself; the child finishes on its own
        self.proc = None


def decoder_early(header) -> Pending:
    """Start compiling the decoder `header` needs in a child process, if it is not cached
    and there is a second core to do it on."""
    from .. import kernels

    coding = header.payload_coding
    name = coding.decoder_kernel(header)
    if not coding.warmup_ok(header):
        return Pending()  # the child's plain-Python payload would take too long to write
    if kernels.thread_limit() < 2 or kernels.is_cached(name):
        return Pending()
    env = dict(os.environ)
    # the child imports this very tqcli, wherever it was imported from
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "tqcli.library.precompile"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.stdin.write(header.to_bytes())
        finally:
            proc.stdin.close()
    except OSError:
        return Pending()
    return Pending(proc)


def _decode_zeros() -> None:
    """The child: decode one chunk of zero codes and scales under the header on stdin
    (PayloadCoding.warmup_payload: for the entropy coding, a valid stream of the middle
    cell, written by the plain-Python coder so that no encoder kernel is compiled here)."""
    import io

    from ..codec.state import Codec
    from ..format.header import Header

    header = Header.read_from(io.BytesIO(sys.stdin.buffer.read()).read)
    rows = min(8, header.chunk_rows)
    payload = header.payload_coding.warmup_payload(header, rows)
    if payload is not None:
        Codec(header).decode(payload, rows)


if __name__ == "__main__":
    _decode_zeros()

"""Reading an input file that may change while tq reads it.

tq used to memory-map .npy and .safetensors inputs.  A file truncated while mapped turns
the next access to a page past its new end into SIGBUS, which kills the process with no
message and leaves the temporary output behind; a file truncated before the map was made
gave numpy's "buffer is too small".  Positioned reads (os.preadv / os.pread) into tq's own
arrays have neither failure: a read past the end comes back short.

A StableFile remembers what the file was when tq opened it (device, inode, size,
modification time) and checks it again around every read: a file truncated, grown,
rewritten in place, or replaced by another file at its name is refused with one line
(InputError, kind "changed"), whatever the reads returned.  A file that is only removed
while tq reads it keeps its data (the open descriptor holds it) and is read to the end.
"""

from __future__ import annotations

import os

from ..errors import InputError


class StableFile:
    """Positioned reads of a regular file that must not change while tq reads it."""

    def __init__(self, fd: int, name: str, expect: os.stat_result | None = None):
        """fd: an open descriptor (not closed here); expect: the file's status when tq
        first looked at it (its header was read and checked against that size; None:
        now)."""
        self.fd, self.name = fd, name
        st = os.fstat(fd) if expect is None else expect
        self._id = (st.st_dev, st.st_ino)
        self.size = st.st_size
        self._mtime = st.st_mtime_ns
        self.check()

    def check(self) -> None:
        """Refuse the file if it is no longer what it was when opened (InputError)."""
        self._compare(os.fstat(self.fd))

    def check_name(self) -> None:
        """check() by the file's name alone, for after its descriptor was closed."""
        try:
            st = os.stat(self.name)
        except OSError:  # removed: its data was read through the descriptor
            return
        self._compare(st)

    def _compare(self, st: os.stat_result) -> None:
        if st.st_size != self.size:
            how = "truncated" if st.st_size < self.size else "grown"
            raise InputError(f"changed while tq read it ({how} from {self.size} to "
                             f"{st.st_size} bytes)", kind="changed")
        if st.st_mtime_ns != self._mtime:
            raise InputError("changed while tq read it (written to)", kind="changed")
        try:
            now = os.stat(self.name)
        except OSError:  # removed: the descriptor still holds the data
            return
        if (now.st_dev, now.st_ino) != self._id:
            raise InputError("changed while tq read it (replaced by another file)",
                             kind="changed")

    def read_into(self, buf, offset: int) -> None:
        """Fill buf (a writable bytes-like object) from `offset`; checks the file before
        and after, and refuses a short read as a change."""
        view = memoryview(buf).cast("B")
        self.check()
        got = 0
        while got < len(view):
            try:
                if hasattr(os, "preadv"):
                    k = os.preadv(self.fd, [view[got:]], offset + got)
                else:  # pragma: no cover - platforms without preadv
                    data = os.pread(self.fd, len(view) - got, offset + got)
                    k = len(data)
                    view[got:got + k] = data
            except OSError as e:
                raise InputError(f"read failed ({e.strerror or e})") from None
            if not k:
                break
            got += k
        self.check()
        if got != len(view):  # the size checks passed, yet the data ended: still a change
            raise InputError(f"changed while tq read it (ended {len(view) - got} bytes "
                             f"early)", kind="changed")

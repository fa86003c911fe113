"""The entropy coding's payload by the plain-numpy reference (tqcli/codec/reference.py and
tqcli/codec/reference_rans.py), for the tests to compare the kernels with bit for bit:
kept apart from entropy.py, whose kernels' paths it mirrors, so that each stays a
readable size."""

from __future__ import annotations


class EntropyReference:
    """reference_encode / reference_decode of the coding table's entry (base.py's
    interface); mixed into entropy.Entropy, which supplies segments()."""

    def reference_encode(self, codec, x) -> bytes:
        """The payload of rows x (at most one chunk) by tqcli/codec/reference.py and
        tqcli/codec/reference_rans.py, for the tests to compare with bit for bit."""
        import numpy as np

        from .. import reference, reference_rans

        h, m = codec.header, codec.header.model
        idx, scales = reference.encode_indices(x, codec.plan, self.thresholds(h),
                                               codec.centroids, codec.rule)
        streams = []
        for a in range(0, x.shape[0], m.segment_rows):
            seg = idx[a:a + m.segment_rows].reshape(-1)
            streams.append(reference_rans.encode(seg, m.frequencies, m.precision, m.lanes))
        lens = np.asarray([len(s) for s in streams], "<u4")
        return lens.tobytes() + b"".join(streams) + scales.astype(codec.scale_dtype).tobytes()

    def reference_decode(self, codec, payload, rows: int):
        import numpy as np

        from .. import reference, reference_rans

        h, m = codec.header, codec.header.model
        if h.scale_dtype == "float64":
            raise NotImplementedError("the numpy reference decodes in binary32 only")
        segs = self.segments(h, rows)
        lens = np.frombuffer(payload, "<u4", count=len(segs))
        at, parts = 4 * len(segs), []
        for r, n in zip(segs, lens):
            parts.append(reference_rans.decode(bytes(payload[at:at + int(n)]), r * h.dim,
                                               m.frequencies, m.precision, m.lanes))
            at += int(n)
        idx = np.concatenate(parts).reshape(rows, h.dim).astype(np.int64)
        scales = np.frombuffer(payload, codec.scale_dtype, count=rows, offset=at)
        return reference.decode_indices(idx, scales.astype(np.float32), codec.plan,
                                        codec.centroids)

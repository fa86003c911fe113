"""The codec: rotations, payload codings, the quantiser state a header implies, the
encoder's options and fitted stages, and the plain-numpy twins of the kernels."""

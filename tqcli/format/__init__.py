"""The bytes of the spec: the header, the single-array container, the collection,
and the table of layouts that tells them apart."""

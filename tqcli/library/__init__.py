"""The library: opened files (TqFile, collections), the api verbs, evaluation and
reports."""

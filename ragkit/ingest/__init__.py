"""Ingest: the pipeline from folders to a committed index.

A thread reads and chunks files (:mod:`.prepare`), embedding requests are kept
in flight (:mod:`.scheduler`), and each file is committed whole to the store
(:mod:`.pipeline`).
"""

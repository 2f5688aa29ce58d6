"""Chunking: text -> chunks.

Text is cut into units that follow its structure (:mod:`.units`), packed into
overlapping chunks (:mod:`.packing`), whole (:mod:`.text`) or streamed in
windows for files too big to hold (:mod:`.streaming`).
"""

"""Loading: files -> documents.

Walks the folders given (skip rules, size policy: :mod:`.files`), decodes text
(:mod:`.decoding`), reads the formats that need a reader, PDF and HTML
(:mod:`.readers`), and keys each file by its identity (:mod:`.paths`).
"""

"""Store: the local index, SQLite tables + a FAISS vector cache.

:mod:`.local` is the store; :mod:`.tables` its SQLite schema and writer,
:mod:`.vectors` the FAISS indexes, :mod:`.keywords` the full-text terms,
:mod:`.manifest` the index's identity; :mod:`.folders` and :mod:`.building`
create, lock, replace and delete index folders.
"""

"""Store: where an index's chunks, vectors and keyword terms are kept.

:mod:`.base` is the interface every store implements and :mod:`.opening` picks
the store an index uses.  :mod:`.local` is the local store (SQLite tables + a
FAISS vector cache): :mod:`.tables` its SQLite schema and writer, :mod:`.cache`
and :mod:`.vectors` its FAISS indexes, :mod:`.fulltext` its keyword search,
:mod:`.layout` its folder's files.  :mod:`.milvus` keeps an index in Milvus or
Milvus Lite (:mod:`.milvus_names` writes its URIs, keys and filters).  :mod:`.keywords` makes
the full-text terms of both, :mod:`.manifest` checks the index's identity and
format.  :mod:`.folders` and :mod:`.building` create, lock, replace and delete
index folders, touching only ragkit's own files.  The names below are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = [
    "WORK_DIR",
    "FileRecord",
    "Store",
    "Writer",
    "check_new_folder",
    "check_new_name",
    "clean_stale_work",
    "delete_index",
    "expand_user",
    "first_build",
    "keyword_terms",
    "lock_index",
    "new_manifest",
    "owned_file",
    "read_manifest",
    "real_folder",
    "replacement",
    "swap_folders",
]

# name -> module that defines it
_EXPORTS = {
    "Store": "local", "owned_file": "layout", "read_manifest": "layout",
    "FileRecord": "tables", "Writer": "tables",
    "keyword_terms": "keywords",
    "WORK_DIR": "building", "clean_stale_work": "building", "delete_index": "building",
    "first_build": "building", "new_manifest": "building", "replacement": "building",
    "swap_folders": "building",
    "check_new_folder": "folders", "check_new_name": "folders", "expand_user": "folders",
    "lock_index": "folders", "real_folder": "folders",
}

if TYPE_CHECKING:
    from .building import (
        WORK_DIR,
        clean_stale_work,
        delete_index,
        first_build,
        new_manifest,
        replacement,
        swap_folders,
    )
    from .folders import check_new_folder, check_new_name, expand_user, lock_index, real_folder
    from .keywords import keyword_terms
    from .layout import owned_file, read_manifest
    from .local import Store
    from .tables import FileRecord, Writer


__getattr__ = lazy_exports(__name__, _EXPORTS)

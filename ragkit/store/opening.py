"""Which store an index uses: the one place that knows both (see :mod:`ragkit.store.base`).

An index folder always holds ``manifest.json``.  For the local store it sits
next to the SQLite database; for a Milvus store it also names the store
(``"store": "milvus://host:19530/db"`` or a Milvus Lite ``.db`` path) and the
collection, and everything else lives in Milvus.  So ``--store`` is given to
the first ``ingest`` only; later commands find it through ``--index``.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .base import IndexStore
from .layout import read_manifest, take_lock, write_manifest
from .local import Store
from .manifest import complete_manifest

__all__ = ["LOCAL", "create_remote", "drop_remote", "is_remote", "open_store", "store_exists",
           "store_of"]

LOCAL = "local"


def store_exists(root: Path) -> bool:
    """Whether ``root`` holds an index (of either store)."""
    return Store.exists(root)


def store_of(root: Path) -> str:
    """The store URI of the index at ``root``: :data:`LOCAL`, or where its Milvus is."""
    return str(read_manifest(root).get("store") or LOCAL)


def is_remote(uri: str | None) -> bool:
    """Whether ``uri`` (as given to ``--store``) is a Milvus store."""
    return bool(uri) and uri != LOCAL


def open_store(root: Path) -> IndexStore:
    """Open the index at ``root`` in whichever store its manifest names."""
    manifest = read_manifest(root)
    if not is_remote(manifest.get("store")):
        return Store.open(root)
    from .milvus import MilvusStore

    return MilvusStore.open(root, manifest)


def collection_name(root: Path) -> str:
    """A Milvus collection name for the index at ``root``: letters, digits and ``_`` only.

    >>> collection_name(Path("/h/notes")), collection_name(Path("/h/my notes"))[:15]
    ('ragkit_notes', 'ragkit_my_notes')
    """
    name = root.name
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name)[:120]
    if clean != name:
        clean += f"_{zlib.crc32(name.encode('utf-8', 'surrogateescape')):08x}"
    return f"ragkit_{clean}"


def create_remote(root: Path, manifest: dict[str, Any], uri: str) -> IndexStore:
    """A new Milvus index for ``root`` (or join the one its collection already holds).

    The folder gets the manifest naming the store and collection, written last:
    a failure before leaves no index behind.
    """
    from .milvus import MilvusStore
    from .milvus_names import store_uri

    full = complete_manifest({**manifest, "store": store_uri(uri),
                              "collection": collection_name(root)})
    store = MilvusStore.create(root, full)  # fails (unreachable, mismatch) before the folder
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root, store.manifest)
    return store


def drop_remote(root: Path) -> None:
    """Drop the Milvus collections of the index at ``root`` (nothing for a local index)."""
    try:
        manifest = read_manifest(root)
    except Exception:  # a damaged pointer: nothing more to drop than its folder
        return
    if not is_remote(manifest.get("store")):
        return
    from .milvus import MilvusStore

    fh = take_lock(root)
    try:
        store = MilvusStore.open(root, manifest)
        store.drop()
        store.close()
    finally:
        from .layout import release_lock

        release_lock(fh)


def check_store(root: Path, wanted: str | None) -> None:
    """Refuse ``--store`` naming another store than the existing index at ``root`` uses."""
    if not wanted:
        return
    have = store_of(root)
    want = wanted if wanted == LOCAL else _normal(wanted)
    if have != want:
        raise UsageError(f"index '{root.name}' lives in {have}, not {want} — leave out "
                         "--store, or use another --index")


def _normal(uri: str) -> str:
    from .milvus_names import store_uri

    return store_uri(uri)

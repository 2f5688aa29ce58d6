"""How ragkit writes things for Milvus: the ``--store`` URI, file keys, filter literals.

Plain text work, no pymilvus: :mod:`ragkit.store.opening` reads ``--store``
with it, and the Milvus store (:mod:`ragkit.store.milvus`, its client and its
writer) keys and filters its rows with it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

from ..errors import UsageError

__all__ = ["dec_path", "enc_path", "in_list", "is_store_uri", "literal", "store_uri"]

_HEX = "?hex:"  # prefix of a path that is not valid UTF-8, kept as the hex of its bytes


def is_store_uri(text: str) -> bool:
    """Whether ``text`` names a Milvus store (``milvus://...`` or a ``.db`` path)."""
    return text.startswith("milvus://") or text.endswith(".db")


def store_uri(text: str) -> str:
    """``--store`` as kept in the manifest: a ``milvus://`` URI, or a ``.db`` file's absolute path.

    >>> store_uri("milvus://db.example:19530/team")
    'milvus://db.example:19530/team'
    """
    text = text.strip()
    if text.startswith("milvus://"):
        if not re.fullmatch(r"milvus://[^/\s:]+(:\d+)?(/\w+)?/?", text):
            raise UsageError(f"--store {text} is not a Milvus URI — use milvus://HOST:PORT[/DB]")
        return text.rstrip("/")
    if text.endswith(".db"):
        return os.path.abspath(os.path.expanduser(text))
    raise UsageError(f"unknown --store {text!r} — use local, milvus://HOST:PORT[/DB] "
                     "or a Milvus Lite file ending in .db")


def enc_path(path: str) -> str:
    """A file key as a Milvus string (a name that is not UTF-8 becomes hex).

    >>> enc_path(os.fsdecode(b"/d/caf\\xe9")), dec_path(enc_path(os.fsdecode(b"/d/caf\\xe9")))[-4:]
    ('?hex:2f642f636166e9', 'caf\\udce9')
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return _HEX + os.fsencode(path).hex()
    return path


def dec_path(value: str) -> str:
    """The file key :func:`enc_path` was given."""
    return os.fsdecode(bytes.fromhex(value[len(_HEX):])) if value.startswith(_HEX) else value


def literal(text: str) -> str:
    """``text`` as a string literal of a Milvus filter expression."""
    return json.dumps(text, ensure_ascii=False)


def in_list(values: Sequence[Any]) -> str:
    """A list literal for ``x in [...]``.

    >>> in_list([1, 2]), in_list(['a"b'])
    ('[1, 2]', '["a\\\\"b"]')
    """
    return "[" + ", ".join(literal(v) if isinstance(v, str) else str(int(v))
                           for v in values) + "]"

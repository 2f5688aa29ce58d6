"""Sharded ingest: ``--shard i/n`` indexes only the files of shard i, so n runs share a corpus.

A file's shard is computed from its path *relative to the ingest root* it was
found under (``guide/setup.md`` for ``ragkit ingest corpora``; a file named as
a root is its own name), written with ``/`` separators, in Unicode NFC (macOS
file systems hand out decomposed names), and encoded as UTF-8 (bytes that are
not UTF-8 kept as they are).  The first 8 bytes of the SHA-256 of that, read
as a big-endian number, modulo n, plus one, is the shard:

    shard = int.from_bytes(sha256(relative_path)[:8], "big") % n + 1

Why this is stable across machines: SHA-256 is fixed by a standard (FIPS 180-4),
so every machine, operating system, Python version and process computes the
same value — unlike Python's ``hash()``, which is salted per process.  The
path is relative, so machines that mount the corpus at different places agree
(given the same PATHS).  Check one by hand:
``printf %s 'guide/setup.md' | sha256sum`` (first 16 hex digits, mod n, + 1).

Deletions are per shard too: an indexed file that is gone is removed only by
the shard it belongs to, and files of other shards are neither indexed,
updated nor removed.  All of this is decided here, in ingest, on keys: it does
not depend on the store the index is kept in.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import UsageError

__all__ = ["Shard", "ShardView", "shard_of"]

_V = TypeVar("_V")
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
#: More shards than this is a typo, not a cluster.
MAX_SHARDS = 100_000


def shard_of(relative: str, count: int) -> int:
    """The shard (1..count) of a file, from its path below the ingest root.

    >>> shard_of("guide/setup.md", 1), shard_of("guide/setup.md", 3)
    (1, 3)
    """
    text = unicodedata.normalize("NFC", relative.replace(os.sep, "/"))
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based: ``1/3``, ``2/3``, ``3/3``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Read ``i/n``; anything else is a :class:`UsageError` naming the value.

        >>> Shard.parse("2/3")
        Shard(index=2, count=3)
        >>> Shard.parse("0/3")
        Traceback (most recent call last):
        ragkit.errors.UsageError: --shard '0/3' is not a shard — write I/N with 1 <= I <= N, \
e.g. --shard 1/4 ... --shard 4/4
        """
        match = _SPEC.fullmatch(text)
        if match:
            index, count = int(match[1]), int(match[2])
            if 1 <= index <= count <= MAX_SHARDS:
                return cls(index, count)
        raise UsageError(f"--shard {text!r} is not a shard — write I/N with 1 <= I <= N, "
                         "e.g. --shard 1/4 ... --shard 4/4")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, relative: str) -> bool:
        """Whether the file at ``relative`` (below its root) is this shard's."""
        return shard_of(relative, self.count) == self.index


class ShardView:
    """Which keys (see :mod:`ragkit.loading.paths`) of an ingest's roots a shard owns.

    Without a shard every key is owned; a key outside the roots is owned too, so
    the rules for such keys stay what they are without shards.
    """

    def __init__(self, shard: Shard | None, roots: Iterable[Path]) -> None:
        self.shard = shard
        # Longest first: a root inside another gives its files their path below it.
        self._roots = sorted({os.path.realpath(r) for r in roots}, key=len, reverse=True)

    def owns(self, key: str) -> bool:
        """Whether ``key`` is this shard's to index and to delete."""
        if self.shard is None:
            return True
        relative = self.relative(key)
        return relative is None or self.shard.owns(relative)

    def relative(self, key: str) -> str | None:
        """``key``'s path below the root it lies under; a root's own name; None if outside."""
        for root in self._roots:
            if key == root:
                return os.path.basename(root)
            if key.startswith(root.rstrip(os.sep) + os.sep):
                return key[len(root.rstrip(os.sep)) + 1 :]
        return None

    def keep(self, known: Mapping[str, _V]) -> dict[str, _V]:
        """The entries of ``known`` (by key) this shard owns."""
        return {key: value for key, value in known.items() if self.owns(key)}

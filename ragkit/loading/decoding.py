"""Telling text from binary, and which encoding a text file is in.

UTF-8 (with or without a BOM), UTF-16/32 with a BOM, else GB18030 when that
reads as Chinese; bytes that do not decode become U+FFFD, and a file that is
mostly undecodable, or has NUL bytes without a BOM, is binary.
"""

from __future__ import annotations

import codecs
import re

from ..scripts import CJK_TEXT_CHAR

__all__ = ["decode_text", "looks_like_text"]

_SNIFF = 8192  # bytes looked at to tell text from binary
_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# C0 controls that text files do not hold (tab, newlines, form feed and ESC they may).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_CHINESE = CJK_TEXT_CHAR


def decode_text(data: bytes) -> str:
    """Decode a text file: UTF-8 (BOM or not), UTF-16/32 with BOM, else GB18030.

    >>> decode_text(b"\\xef\\xbb\\xbfcaf\\xc3\\xa9")
    'café'
    >>> decode_text("熊猫吃竹子。".encode("gb18030"))
    '熊猫吃竹子。'
    >>> decode_text(b"caf\\xe9 au lait")
    'caf\\ufffd au lait'
    >>> decode_text(b"\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\rIHDR")
    Traceback (most recent call last):
    ...
    ValueError: binary file
    """
    codec, bom = _detect(data)
    return data[bom:].decode(codec, errors="replace")


def _detect(data: bytes, complete: bool = True) -> tuple[str, int]:
    """(codec, length of its BOM) of a text file's bytes, or ValueError for a binary file.

    ``complete``: ``data`` is the whole file, not its first bytes (which may end
    inside a character).
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    if b"\x00" in data[:_SNIFF]:
        raise ValueError("binary file")
    if _decoded(data, "utf-8", complete) is not None:
        return "utf-8", 0
    chinese = _decoded(data, "gb18030", complete)
    if chinese is not None and _looks_chinese(chinese):
        return "gb18030", 0
    text = data.decode("utf-8", errors="replace")
    if text.count("\ufffd") * 3 > len(text):  # mostly undecodable: not text at all
        raise ValueError("binary file")
    return "utf-8", 0


def _decoded(data: bytes, codec: str, complete: bool) -> str | None:
    """``data`` decoded strictly, or None if it is not in ``codec``."""
    try:
        return codecs.getincrementaldecoder(codec)().decode(data, final=complete)
    except UnicodeDecodeError:
        return None


def _looks_chinese(text: str) -> bool:
    """Whether a GB18030 reading is Chinese text rather than Latin-1 bytes that happen to decode."""
    # Real Chinese text decodes to mostly CJK characters and punctuation.
    foreign = len(_NON_ASCII.findall(text))
    return len(_CHINESE.findall(text)) * 2 >= foreign


def _looks_binary(head: bytes) -> bool:
    """NUL bytes in a file's first bytes, without a UTF-16/32 BOM, mean binary."""
    return b"\x00" in head and not any(head.startswith(bom) for bom, _ in _BOMS)


def looks_like_text(head: bytes, complete: bool) -> bool:
    """Whether the first bytes of a file that has no known extension are text.

    Stricter than the check for files named as text: besides NUL bytes and
    undecodable bytes, control characters mark data.  ``complete``: ``head``
    is the whole file.

    >>> looks_like_text(b"Copyright 2024 Example Corp.\\nPermission is granted", True)
    True
    >>> looks_like_text("Apache License\\n版本 2.0".encode("utf-16"), True)
    True
    >>> looks_like_text(b"\\x7fELF\\x02\\x01\\x01\\x00\\x00", True)
    False
    >>> looks_like_text(bytes(range(1, 32)) * 20, True)
    False
    """
    try:
        codec, bom = _detect(head, complete)
    except ValueError:
        return False
    text = head[bom:].decode(codec, errors="replace")
    return len(_CONTROL.findall(text)) * 100 <= len(text)  # a stray control char or two is fine

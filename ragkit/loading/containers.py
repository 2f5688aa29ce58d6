"""Opening the zip containers of office files and e-books without trusting them.

A ``.docx``, ``.pptx``, ``.xlsx``, ``.odt``, ``.odp``, ``.ods`` or ``.epub``
is a zip archive.  :func:`open_zip` refuses, with a one-line reason, what
would hurt or mislead an ingest: bytes that are not a zip (truncated or
garbage), a password-protected office file (an OLE2 compound file holding an
``EncryptedPackage``), a legacy binary Office file with a new name, and a zip
bomb, whose members would unpack to more than the cap.  The cap is checked on
the sizes the archive declares, and again on the bytes actually unpacked by
:func:`read_member` (zipfile itself never returns more than a member's
declared size, so the libraries that open the container get the same bound).
XML is parsed with the standard library's expat, which resolves no external
entities and stops entity expansion attacks.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from ..errors import LoadError

__all__ = ["MAX_MEMBERS", "broken", "need", "open_zip", "read_member", "read_xml"]

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound-file signature of old Office files
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")  # the stream an encrypted OOXML file holds
#: More members than this in one file is not a document anyone wrote.
MAX_MEMBERS = 50_000
_BLOCK = 1 << 20


def need(module: str, package: str, path: Path) -> None:
    """Raise a :class:`LoadError` saying how to install ``package`` if ``module`` is missing."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise LoadError(str(path), f"{path.suffix.lower()} files need {package} — "
                                   "pip install 'ragkit[formats]'") from None


def broken(path: Path, exc: BaseException) -> LoadError:
    """The one-line failure for a file a parser choked on."""
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:80]
    return LoadError(str(path), f"broken {path.suffix.lower()} file ({detail})")


def open_zip(path: Path, data: bytes, limit: int) -> zipfile.ZipFile:
    """The zip archive in ``data``, checked: unpacks to at most ``limit`` bytes, not encrypted."""
    suffix = path.suffix.lower()
    if data.startswith(_OLE2):
        if _ENCRYPTED in data:
            raise LoadError(str(path), "password-protected file — save a copy without the "
                                       "password and ingest that")
        raise LoadError(str(path), f"an old binary Office file named {suffix} — save it as "
                                   f"{suffix} and ingest again")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        why = "truncated or damaged" if data.startswith(b"PK") else "not a zip container"
        raise LoadError(str(path), f"broken {suffix} file ({why}: {exc})"[:160]) from None
    if len(members) > MAX_MEMBERS:
        raise LoadError(str(path), f"refused: {len(members)} parts in one file — "
                                   "probably a zip bomb")
    declared = sum(m.file_size for m in members)
    if declared > limit:
        raise _bomb(path, declared, limit)
    if any(m.flag_bits & 0x1 for m in members):  # zip-level encryption
        raise LoadError(str(path), "password-protected file — save a copy without the "
                                   "password and ingest that")
    return archive


def _bomb(path: Path, size: int, limit: int) -> LoadError:
    return LoadError(
        str(path),
        f"refused: it unpacks to more than {limit / 1e6:g} MB ({size / 1e6:.1f} MB) — "
        "probably a zip bomb; if it is real, raise RAGKIT_MAX_FILE_MB",
    )


def read_member(path: Path, archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """One member's bytes, counted as they are unpacked; past ``limit`` it is a zip bomb."""
    out = bytearray()
    try:
        with archive.open(name) as fh:
            while block := fh.read(_BLOCK):
                out += block
                if len(out) > limit:
                    raise _bomb(path, len(out), limit)
    except KeyError:
        raise LoadError(str(path), f"broken {path.suffix.lower()} file (no {name} in it)") \
            from None
    except LoadError:
        raise
    except Exception as exc:  # zlib.error, BadZipFile (CRC), EOFError on truncated data
        raise broken(path, exc) from None
    return bytes(out)


def read_xml(path: Path, archive: zipfile.ZipFile, name: str, limit: int) -> ElementTree.Element:
    """One member parsed as XML; a parse error is a broken file."""
    data = read_member(path, archive, name, limit)
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise broken(path, exc) from None

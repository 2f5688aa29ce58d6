"""EPUB e-books, read with zipfile and ElementTree.

The package file named by ``META-INF/container.xml`` lists the chapters in
reading order (the spine); each chapter's XHTML becomes text as an HTML page
does (:func:`~.readers.html_to_text`), one part per chapter.  Its heading is
the title the table of contents gives it (EPUB 3 nav or EPUB 2 NCX) when the
chapter has no ``h1`` of its own.  An e-book whose chapters are encrypted
(DRM) is refused with that reason.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path
from urllib.parse import unquote
from xml.etree.ElementTree import Element

from ..errors import LoadError
from .containers import open_zip, read_member, read_xml
from .decoding import decode_text
from .markup import Part, heading
from .readers import html_to_text

__all__ = ["read_epub"]

_TITLE = re.compile(r"<title\b.*?</title\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TYPES = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml"}


def _local(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def read_epub(path: Path, data: bytes, limit: int) -> list[Part]:
    """An e-book as one part per chapter with text, in reading order."""
    archive = open_zip(path, data, limit)
    with archive:
        package = _package_path(path, archive, limit)
        opf = read_xml(path, archive, package, limit)
        base = posixpath.dirname(package)
        manifest = {item.get("id"): item for item in opf.iter() if _local(item) == "item"}
        spine = [ref.get("idref") for ref in opf.iter() if _local(ref) == "itemref"]
        titles = _toc_titles(path, archive, base, manifest, limit)
        locked = _encrypted(path, archive, limit)
        parts: list[Part] = []
        for idref in spine:
            item = manifest.get(idref)
            if item is None or item.get("media-type") not in _HTML_TYPES:
                continue
            name = posixpath.normpath(posixpath.join(base, unquote(item.get("href", ""))))
            if name in locked:
                raise LoadError(str(path), "DRM-protected e-book — ragkit cannot read it")
            html = decode_text(read_member(path, archive, name, limit))
            title = titles.get(name, "")
            if title:  # a chapter's <title> is often the book's: the contents name it better
                html = _TITLE.sub("", html)
            text = html_to_text(html)
            if title and not text.startswith("# "):
                text = f"{heading(1, title)}\n\n{text}"
            if text.strip():
                parts.append((None, text))
    if not parts and spine:
        raise LoadError(str(path), "no text in the e-book")
    return parts


def _package_path(path: Path, archive: zipfile.ZipFile, limit: int) -> str:
    container = read_xml(path, archive, "META-INF/container.xml", limit)
    for element in container.iter():
        if _local(element) == "rootfile" and element.get("full-path"):
            return unquote(element.get("full-path", ""))
    raise LoadError(str(path), "broken .epub file (its container names no package file)")


def _toc_titles(
    path: Path, archive: zipfile.ZipFile, base: str, manifest: dict[str | None, Element],
    limit: int,
) -> dict[str, str]:
    """Chapter file -> its title in the table of contents (the first one given)."""
    titles: dict[str, str] = {}
    for item in manifest.values():
        nav = "nav" in (item.get("properties") or "").split()
        if not nav and item.get("media-type") != "application/x-dtbncx+xml":
            continue
        toc_name = posixpath.normpath(posixpath.join(base, unquote(item.get("href", ""))))
        try:
            toc = read_xml(path, archive, toc_name, limit)
        except LoadError:
            continue  # a broken table of contents costs the titles, not the book
        folder = posixpath.dirname(toc_name)
        for href, title in _links(toc):
            target = posixpath.normpath(posixpath.join(folder, unquote(href.split("#")[0])))
            titles.setdefault(target, " ".join(title.split()))
    return titles


def _links(toc: Element) -> list[tuple[str, str]]:
    """(href, title) pairs of an EPUB 3 nav document or an EPUB 2 NCX."""
    pairs: list[tuple[str, str]] = []
    for element in toc.iter():
        name = _local(element)
        if name == "a" and element.get("href"):
            pairs.append((element.get("href", ""), "".join(element.itertext())))
        elif name == "navPoint":
            label = next((e for e in element.iter() if _local(e) == "text"), None)
            content = next((e for e in element if _local(e) == "content"), None)
            if label is not None and content is not None and content.get("src"):
                pairs.append((content.get("src", ""), "".join(label.itertext())))
    return pairs


def _encrypted(path: Path, archive: zipfile.ZipFile, limit: int) -> set[str]:
    """Members listed in ``META-INF/encryption.xml`` (fonts are obfuscated this way too)."""
    if "META-INF/encryption.xml" not in archive.namelist():
        return set()
    root = read_xml(path, archive, "META-INF/encryption.xml", limit)
    return {posixpath.normpath(unquote(e.get("URI", ""))) for e in root.iter()
            if _local(e) == "CipherReference"}

"""Jupyter notebooks (``.ipynb``), read with the standard library's json.

Each cell with text is one part, cited as ``cell N`` (N counts every cell,
as Jupyter shows them): a markdown cell as markdown, a code cell as fenced
code in the notebook's language followed by its text outputs (streams,
``text/plain`` results, errors).  Images and other binary outputs are never
indexed: they are base64, which reads as noise and would swamp the index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import LoadError
from .decoding import decode_text
from .markup import Part, escape, fenced, join_blocks

__all__ = ["read_ipynb"]

#: Characters of one output kept: a cell that prints a megabyte is mostly noise.
MAX_OUTPUT_CHARS = 20_000


def read_ipynb(path: Path, data: bytes, limit: int) -> list[Part]:
    """A notebook as one part per cell with text: markdown, code and its text outputs."""
    try:
        notebook = json.loads(decode_text(data))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        detail = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise LoadError(str(path), f"not a notebook: not JSON ({detail})") from None
    cells = _cells(notebook)
    if cells is None:
        raise LoadError(str(path), "not a notebook: no list of cells in it")
    language = _language(notebook)
    parts = [(n, _cell_text(cell, language)) for n, cell in enumerate(cells, 1)
             if isinstance(cell, dict)]
    return [(n, text) for n, text in parts if text.strip()]


def _cells(notebook: Any) -> list[Any] | None:
    if not isinstance(notebook, dict):
        return None
    cells = notebook.get("cells")
    if cells is None and isinstance(notebook.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in notebook["worksheets"] if isinstance(ws, dict)
                 for c in ws.get("cells") or []]
    return cells if isinstance(cells, list) else None


def _language(notebook: dict[str, Any]) -> str:
    meta = notebook.get("metadata")
    if not isinstance(meta, dict):
        return ""
    for key in ("language_info", "kernelspec"):
        info = meta.get(key)
        if isinstance(info, dict):
            name = info.get("name") if key == "language_info" else info.get("language")
            if isinstance(name, str) and name.isidentifier():
                return name
    return ""


def _text(value: Any) -> str:
    """A notebook string: one string or a list of lines."""
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _cell_text(cell: dict[str, Any], language: str) -> str:
    source = _text(cell.get("source", cell.get("input"))).strip()
    kind = cell.get("cell_type")
    if kind == "markdown":
        return source
    if kind != "code":
        return escape(source)  # raw cells: plain text
    blocks = [fenced(source, language) if source else ""]
    outputs = cell.get("outputs")
    for output in outputs if isinstance(outputs, list) else []:
        text = _output_text(output)[:MAX_OUTPUT_CHARS].strip()
        if text:
            blocks.append(fenced(text))
    return join_blocks(blocks)


def _output_text(output: Any) -> str:
    """The text of one output; "" for images and other binary data."""
    if not isinstance(output, dict):
        return ""
    kind = output.get("output_type")
    if kind == "stream":
        return _text(output.get("text"))
    if kind == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}"
    data = output.get("data")
    if isinstance(data, dict):  # execute_result, display_data (nbformat 4)
        return _text(data.get("text/plain"))
    return _text(output.get("text"))  # nbformat 3 results

"""Regenerate corpora/guide/handbook.pdf, the operations handbook of the demo corpus.

Run ``python3 corpora/make_handbook.py``.  The PDF is committed, so this only
matters when the text below changes; page numbers are what citations point at.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Each page: a title, then paragraphs; the PDF wraps the lines itself.
PAGES: list[list[str]] = [
    [
        "Index layout on disk",
        "Every index is a folder, indexes/<name>/ by default. It holds three kinds of files.",
        (
            "The file manifest.json records the embedding model, the dimension of its vectors, "
            "the chunker settings (size, overlap and unit) and the ragkit version that built "
            "the index. ragkit reads it first and refuses to query an index with a different "
            "embedding model."
        ),
        (
            "The file chunks.sqlite is the SQLite database that holds the truth: every indexed "
            "file with its content hash, and every chunk with its text, file, page, heading and "
            "vector. It also holds the keyword index used by keyword search."
        ),
        (
            "The files vectors-<n>.faiss are a FAISS copy of the vectors, for fast similarity "
            "search. The number n is the generation of the database they match. If the file is "
            "missing or damaged, ragkit rebuilds it from chunks.sqlite."
        ),
        (
            "While an ingest runs, it holds the lock file .lock, so that a second ingest cannot "
            "write to the same index."
        ),
    ],
    [
        "Exit statuses",
        "Every ragkit command ends with an exit status that scripts can test.",
        "Exit status 0 means success.",
        "Exit status 1 means an error that has no status of its own.",
        (
            "Exit status 2 means a usage error: an unknown option, an empty question, or a "
            "value of -k out of range."
        ),
        (
            "Exit status 3 means a backend problem: the Ollama server is unreachable, the model "
            "is missing, the server failed, or it did not answer in time."
        ),
        (
            "Exit status 4 means an index problem: the index is missing, unreadable, busy, or "
            "was built with another embedding model."
        ),
        (
            "Exit status 5 means that ingest finished, but some files could not be read. Each "
            "of them is listed with its reason."
        ),
        "Exit status 6 means that ask found no answer: the documents do not contain the answer.",
        "Exit status 130 means the command was interrupted with Ctrl-C.",
    ],
    [
        "Performance tips",
        (
            "Embedding speed. Ingest sends chunks to the embedding model in batches of 64. With "
            "a fast server, such as Ollama on a GPU, a larger batch makes embedding faster: use "
            "ingest --batch-size 256. On a small CPU, keep the default."
        ),
        (
            "Keeping models loaded. Ollama unloads a model after five minutes without requests, "
            "and loading it again takes time. Set OLLAMA_KEEP_ALIVE=30m in the environment of "
            "ollama serve to keep models in memory between questions."
        ),
        (
            "Shorter prompts. Every chunk given to the model makes the prompt longer. A smaller "
            "-k, such as -k 3, gives faster answers; a larger one gives the model more to read."
        ),
        (
            "Context window. A larger context, such as -o num_ctx=8192, lets the model read "
            "more chunks but uses more memory and time."
        ),
        (
            "Keyword search. ragkit search --retrieval keyword needs no embedding of the query, "
            "so it answers at once, even while the embedding model is still loading."
        ),
    ],
    [
        "Backing up and moving indexes",
        (
            "An index is a plain folder, so a copy of the folder is a complete backup. Copy it "
            "while no ingest is running."
        ),
        (
            "To move an index to another machine, copy its folder into the indexes folder "
            "there, or point --index at the copied folder. The other machine needs the same "
            "embedding model."
        ),
        (
            "To keep indexes outside the project, set RAGKIT_HOME, for example "
            "RAGKIT_HOME=~/ragkit-indexes. Every command then finds its indexes there."
        ),
        "To free disk space, delete indexes you no longer need with ragkit indexes delete NAME.",
    ],
]


def _pdfgen():  # type: ignore[no-untyped-def]
    """tests/pdfgen.py, loaded by path: the tests folder is not a package."""
    spec = importlib.util.spec_from_file_location("pdfgen", HERE.parent / "tests" / "pdfgen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Write the handbook next to the rest of the guide."""
    target = HERE / "guide" / "handbook.pdf"
    pages = ["\n\n".join(paragraphs) for paragraphs in PAGES]
    _pdfgen().write_pdf(target, pages, title="ragkit operations handbook")
    print(f"wrote {target} ({len(PAGES)} pages)")


if __name__ == "__main__":
    main()

"""Every setting ragkit takes from the environment, read in this one place.

The library takes these values as arguments; the CLI (and the ``Index`` facade, for
what its caller leaves out) builds a :class:`Settings` with :meth:`Settings.from_env`
and passes them down.  Nothing in ragkit writes the environment.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .models import DEFAULT_CHAT_MODEL

__all__ = ["DEFAULT_MAX_FILE_MB", "DEFAULT_PARALLEL", "Settings", "debug_enabled", "dumb_terminal",
           "split_hosts"]

DEFAULT_MAX_FILE_MB = 32  # HTML files; PDFs may be PDF_SIZE_FACTOR times bigger
#: Embedding requests in flight when neither RAGKIT_PARALLEL nor OLLAMA_NUM_PARALLEL says.
DEFAULT_PARALLEL = 2
#: What RAGKIT_EMBED_SCRIPTS may say the embedding model reads.
EMBED_SCRIPTS = {"latin": True, "all": False}


@dataclass(frozen=True)
class Settings:
    """ragkit's settings; :meth:`from_env` fills them from the environment."""

    #: Where named indexes live (RAGKIT_HOME; None: the rule of :mod:`ragkit.home`).
    home: Path | None = None
    #: Base of the user-level index home (XDG_DATA_HOME when absolute, else ~/.local/share).
    data_home: Path = Path.home() / ".local" / "share"
    #: Where converted models are cached (RAGKIT_CACHE, else $XDG_CACHE_HOME/ragkit).
    cache_dir: Path = Path.home() / ".cache" / "ragkit"
    #: auto, ollama or embedded (RAGKIT_BACKEND).
    backend: str = "auto"
    #: The Ollama server, as written (OLLAMA_HOST; empty: the default address).  A
    #: comma-separated list names several servers (:attr:`ollama_hosts`).
    ollama_host: str = ""
    #: The chat model (RAGKIT_CHAT_MODEL).
    chat_model: str = DEFAULT_CHAT_MODEL
    #: The relevance an answer needs (RAGKIT_MIN_SCORE; None: the model's calibrated one).
    min_score: float | None = None
    #: The size cap of PDF and HTML files, in MB (RAGKIT_MAX_FILE_MB).
    max_file_mb: float = float(DEFAULT_MAX_FILE_MB)
    #: Embedding requests in flight (RAGKIT_PARALLEL, else OLLAMA_NUM_PARALLEL + 1).
    parallel: int = DEFAULT_PARALLEL
    #: Threads of the embedded engine (RAGKIT_THREADS; None: every CPU this process may use).
    threads: int | None = None
    #: Whether the embedding model reads only Latin script (RAGKIT_EMBED_SCRIPTS=latin|all;
    #: None: what ragkit.models says of it).
    english_only: bool | None = None
    #: The token of a Milvus index store (RAGKIT_MILVUS_TOKEN, "user:password" or an API key).
    milvus_token: str = ""
    #: Tracebacks instead of one-line errors (RAGKIT_DEBUG).
    debug: bool = False
    #: The terminal cannot redraw a progress line (TERM=dumb).
    dumb_terminal: bool = False

    @property
    def ollama_hosts(self) -> list[str]:
        """The Ollama servers OLLAMA_HOST names, as written (empty: the default address)."""
        return split_hosts(self.ollama_host)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The settings ``environ`` holds; a UsageError names a value that makes no sense."""
        get = lambda name: environ.get(name, "").strip()  # noqa: E731
        xdg = get("XDG_CACHE_HOME")
        return cls(
            home=Path(get("RAGKIT_HOME")).expanduser() if get("RAGKIT_HOME") else None,
            # The XDG spec says a relative value is invalid and must be ignored.
            data_home=(Path(get("XDG_DATA_HOME")) if os.path.isabs(get("XDG_DATA_HOME"))
                       else Path.home() / ".local" / "share"),
            cache_dir=(Path(get("RAGKIT_CACHE")).expanduser() if get("RAGKIT_CACHE") else
                       (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ragkit"),
            backend=(get("RAGKIT_BACKEND") or "auto").lower(),
            ollama_host=environ.get("OLLAMA_HOST", ""),
            chat_model=get("RAGKIT_CHAT_MODEL") or DEFAULT_CHAT_MODEL,
            min_score=_min_score(get("RAGKIT_MIN_SCORE")),
            max_file_mb=_megabytes(environ.get("RAGKIT_MAX_FILE_MB", "")),
            parallel=_parallel(get("RAGKIT_PARALLEL"), get("OLLAMA_NUM_PARALLEL")),
            threads=max(1, int(get("RAGKIT_THREADS"))) if get("RAGKIT_THREADS").isdigit()
            else None,
            english_only=_english_only(get("RAGKIT_EMBED_SCRIPTS")),
            milvus_token=get("RAGKIT_MILVUS_TOKEN"),
            debug=debug_enabled(environ),
            dumb_terminal=dumb_terminal(environ),
        )


def split_hosts(value: str) -> list[str]:
    """The entries of a comma-separated host list, as written (empty ones dropped).

    >>> split_hosts("gpu1:11434, gpu2"), split_hosts("")
    (['gpu1:11434', 'gpu2'], [])
    """
    return [part.strip() for part in value.split(",") if part.strip()]


def dumb_terminal(environ: Mapping[str, str] = os.environ) -> bool:
    """TERM=dumb: the terminal cannot redraw a line (never fails, like :func:`debug_enabled`)."""
    return environ.get("TERM") == "dumb"


def debug_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """RAGKIT_DEBUG alone, for error handlers: it never fails as a whole Settings may."""
    return bool(environ.get("RAGKIT_DEBUG"))


def _min_score(raw: str) -> float | None:
    """RAGKIT_MIN_SCORE as a number, None when unset."""
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise UsageError("RAGKIT_MIN_SCORE must be a number, e.g. 0.3") from None


def _megabytes(raw: str) -> float:
    """RAGKIT_MAX_FILE_MB as a positive size (default 32)."""
    raw = raw.strip()
    if not raw:
        return DEFAULT_MAX_FILE_MB
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        raise UsageError(f"RAGKIT_MAX_FILE_MB={raw!r} is not a size in megabytes — set it to "
                         f"a number above 0 (e.g. 100), or unset it for {DEFAULT_MAX_FILE_MB}")
    return megabytes


def _parallel(ragkit: str, ollama: str) -> int:
    """One more request in flight than the server runs at once, unless RAGKIT_PARALLEL says."""
    for value, extra in ((ragkit, 0), (ollama, 1)):
        if value.isdigit() and int(value) > 0:
            return int(value) + extra
    return DEFAULT_PARALLEL


def _english_only(raw: str) -> bool | None:
    """RAGKIT_EMBED_SCRIPTS: ``latin`` (English-only embedder) or ``all``; unset: None."""
    if not raw:
        return None
    if raw.lower() not in EMBED_SCRIPTS:
        raise UsageError(f"RAGKIT_EMBED_SCRIPTS={raw!r} is not a script set — set it to "
                         "'latin' (the embedding model reads English only) or 'all'")
    return EMBED_SCRIPTS[raw.lower()]

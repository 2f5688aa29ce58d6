"""``OLLAMA_HOST`` parsing, with the same rules as Ollama itself."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

__all__ = ["DEFAULT_HOST", "parse_host", "with_tag"]

DEFAULT_HOST = "http://127.0.0.1:11434"
_DEFAULT_PORT = 11434


def parse_host(value: str | None = None) -> str:
    """Normalize ``[scheme://]host[:port][/path]`` to a base URL (``None``: ``$OLLAMA_HOST``).

    >>> parse_host("")
    'http://127.0.0.1:11434'
    >>> parse_host("example.com")
    'http://example.com:11434'
    >>> parse_host("example.com:56789")
    'http://example.com:56789'
    >>> parse_host("http://example.com")
    'http://example.com:80'
    >>> parse_host("https://example.com")
    'https://example.com:443'
    >>> parse_host("https://example.com:56789/path/")
    'https://example.com:56789/path'
    >>> parse_host(":56789")
    'http://127.0.0.1:56789'
    >>> parse_host("0.0.0.0")
    'http://0.0.0.0:11434'
    >>> parse_host("[::1]")
    'http://[::1]:11434'
    >>> parse_host("http://[0123:4567:89ab:cdef::1]:56789")
    'http://[0123:4567:89ab:cdef::1]:56789'
    >>> parse_host("  localhost:8080  ")
    'http://localhost:8080'
    """
    if value is None:
        value = os.environ.get("OLLAMA_HOST", "")
    value = value.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "http", value
    scheme = scheme.lower() or "http"
    explicit_scheme = bool(sep)
    default_port = {"http": 80, "https": 443}.get(scheme, _DEFAULT_PORT) if explicit_scheme \
        else _DEFAULT_PORT
    split = urlsplit(f"//{rest}")
    host = split.hostname or "127.0.0.1"
    try:
        port = split.port or default_port
    except ValueError:  # not a number: keep Ollama's default rather than fail on a typo
        port = default_port
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    path = split.path.rstrip("/")
    return f"{scheme}://{host}:{port}{path}"


def with_tag(name: str) -> str:
    """Ollama's rule that a bare model name means its ``latest`` tag.

    >>> with_tag("all-minilm"), with_tag("smollm2:135m"), with_tag("host:5000/ns/m")
    ('all-minilm:latest', 'smollm2:135m', 'host:5000/ns/m:latest')
    """
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

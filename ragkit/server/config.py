"""What ``ragkit serve`` is asked to do, and the rule about where it may listen.

The settings are plain values filled by the CLI (flags and environment) or by
a program; nothing here reads the environment.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

__all__ = ["DEFAULT_LISTEN", "DEFAULT_PORT", "MAX_BODY", "ServerSettings", "is_loopback",
           "parse_listen"]

#: The port after Ollama's 11434, so both can run side by side.
DEFAULT_PORT = 11435
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
#: Request bodies above this are refused with 413: big enough for a chat with a few
#: base64 images passed through to a vision model, small enough to never exhaust memory.
MAX_BODY = 32 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``ragkit serve`` needs; see ``ragkit serve --help`` for each field."""

    listen: str = DEFAULT_LISTEN
    #: Index names (under ``home``) or paths; empty: every index in ``home``.
    indexes: tuple[str, ...] = ()
    home: Path | None = None
    #: Chat model the rag models answer with (None: RAGKIT_CHAT_MODEL or ragkit's default).
    model: str | None = None
    api_key: str | None = None
    #: Allow a non-loopback address without an API key.
    insecure: bool = False
    backend: str | None = None
    #: The upstream Ollama (None: OLLAMA_HOST or the default), also the pass-through target.
    host: str | None = None
    embed_model: str | None = None
    timeout: float = 300.0
    #: Threads of the embedded engine (None: chosen per call; the CLI passes RAGKIT_THREADS).
    threads: int | None = None
    #: Where the embedded engine caches its converted model (None: ragkit's default).
    cache_dir: Path | None = None
    max_body: int = MAX_BODY
    #: One line per request on stderr.
    access_log: bool = True
    #: Offer the MCP tools at ``/mcp`` (when the ``mcp`` extra is installed).
    mcp: bool = True
    #: Folders kept in step with the served index while serving (``--watch``).
    watch: tuple[str, ...] = ()

    def address(self) -> tuple[str, int]:
        """``(host, port)`` to bind, checked against the loopback rule."""
        host, port = parse_listen(self.listen)
        if not is_loopback(host) and not self.api_key and not self.insecure:
            raise UsageError(
                f"refusing to listen on {self.listen} without an API key: anyone on the network "
                "could read your documents — set --api-key (or RAGKIT_API_KEY), or pass "
                "--insecure")
        return host, port


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT`` into ``(host, port)``.

    >>> parse_listen("127.0.0.1:8080"), parse_listen("[::1]:0"), parse_listen(":9000")
    (('127.0.0.1', 8080), ('::1', 0), ('127.0.0.1', 9000))
    >>> parse_listen("0.0.0.0")
    ('0.0.0.0', 11435)
    """
    value = text.strip()
    host, port = value, str(DEFAULT_PORT)
    if value.startswith("["):
        inside, _, rest = value[1:].partition("]")
        host, port = inside, rest[1:] if rest.startswith(":") else (rest or port)
    elif value.count(":") == 1:
        host, port = value.split(":")
    elif value.count(":") > 1:  # a bare IPv6 address
        host = value
    host = host or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535 or not host or any(c.isspace() for c in host):
        raise UsageError(f"cannot listen on '{text}' — use HOST:PORT, e.g. 127.0.0.1:11435")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("192.168.1.5"), is_loopback("example.com")
    (False, False, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

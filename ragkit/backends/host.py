"""``OLLAMA_HOST`` parsing, with the rules of Ollama's own ``envconfig.Host``.

The value is ``[scheme://]host[:port][/path]``.  The default port depends on
whether a scheme was written: none means Ollama's 11434, ``http://`` means 80
and ``https://`` 443, so ``OLLAMA_HOST=http://gpu-box`` talks to port 80.
A port Ollama cannot read falls back to the default instead of failing,
because the server and the ``ollama`` CLI behave that way and ragkit must reach
the same server they do.  Where Ollama would build a URL nothing can connect
to (a scheme other than http/https, a host with spaces or ``@``), ragkit stops
with a :class:`~ragkit.errors.UsageError` that names the value instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from ..errors import UsageError
from ..settings import Settings, split_hosts

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "parse_host", "parse_hosts", "with_tag"]

DEFAULT_PORT = 11434
DEFAULT_HOST = f"http://127.0.0.1:{DEFAULT_PORT}"

_SCHEME_PORTS = {"http": 80, "https": 443}
# WHATWG's forbidden host code points, plus whitespace and controls: no URL can carry them.
_BAD_HOST = re.compile(r"[\x00-\x20\x7f #%/:<>?@\[\\\]^|]")
_BAD_PATH = re.compile(r"[\x00-\x20\x7f#?\\]")


def parse_host(value: str | None = None) -> str:
    """Normalize ``[scheme://]host[:port][/path]`` to a base URL (``None``: ``$OLLAMA_HOST``).

    Unset or empty means the local default:

    >>> parse_host("")
    'http://127.0.0.1:11434'
    >>> parse_host("   ")
    'http://127.0.0.1:11434'

    No scheme: http on Ollama's port.

    >>> parse_host("example.com")
    'http://example.com:11434'
    >>> parse_host("1.2.3.4")
    'http://1.2.3.4:11434'
    >>> parse_host("0.0.0.0")
    'http://0.0.0.0:11434'
    >>> parse_host("example.com:56789")
    'http://example.com:56789'
    >>> parse_host(":56789")
    'http://127.0.0.1:56789'

    A written scheme brings its own default port:

    >>> parse_host("http://example.com")
    'http://example.com:80'
    >>> parse_host("https://example.com")
    'https://example.com:443'
    >>> parse_host("https://example.com:56789")
    'https://example.com:56789'
    >>> parse_host("HTTPS://Example.com")
    'https://Example.com:443'

    IPv6 literals, with or without brackets and port:

    >>> parse_host("[::1]:8080")
    'http://[::1]:8080'
    >>> parse_host("[::1]")
    'http://[::1]:11434'
    >>> parse_host("::1")
    'http://[::1]:11434'
    >>> parse_host("http://[0001:002:003:0004::1]")
    'http://[1:2:3:4::1]:80'
    >>> parse_host("https://[2001:db8::7]:56789/ollama")
    'https://[2001:db8::7]:56789/ollama'

    A path suffix (a reverse proxy's prefix) is kept, without trailing slashes:

    >>> parse_host("https://example.com:56789/path/")
    'https://example.com:56789/path'
    >>> parse_host("example.com/api/proxy//")
    'http://example.com:11434/api/proxy'
    >>> parse_host("http://example.com/")
    'http://example.com:80'

    Quotes and spaces around the value (a common ``.env`` slip) are ignored,
    and a port that is not a number in 0-65535 falls back to the default:

    >>> parse_host('  "localhost:8080"  ')
    'http://localhost:8080'
    >>> parse_host("localhost:http")
    'http://localhost:11434'
    >>> parse_host("https://example.com:99999")
    'https://example.com:443'
    >>> parse_host("localhost:")
    'http://localhost:11434'

    The one named host Ollama special-cases is its cloud:

    >>> parse_host("ollama.com")
    'https://ollama.com:443'

    What no HTTP client could connect to is refused, naming the value:

    >>> parse_host("ftp://example.com")
    Traceback (most recent call last):
    ragkit.errors.UsageError: cannot use 'ftp://example.com' as the Ollama host — write it as \
[http[s]://]host[:port][/path], e.g. 127.0.0.1:11434
    >>> parse_host("my host:8080")
    Traceback (most recent call last):
    ragkit.errors.UsageError: cannot use 'my host:8080' as the Ollama host — write it as \
[http[s]://]host[:port][/path], e.g. 127.0.0.1:11434
    """
    if value is None:
        value = Settings.from_env().ollama_host
    value = value.strip().strip("\"'").strip()
    if value == "ollama.com":
        return "https://ollama.com:443"
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "http", value
    scheme = scheme.lower()
    hostport, _, path = rest.partition("/")
    host, port = _host_and_port(hostport, _SCHEME_PORTS[scheme] if sep and scheme in
                                _SCHEME_PORTS else DEFAULT_PORT)
    path = path.rstrip("/")
    if scheme not in _SCHEME_PORTS or _BAD_PATH.search(path) or (
            _BAD_HOST.search(host) and not _is_ip(host)):
        raise UsageError(f"cannot use {value!r} as the Ollama host — write it as "
                         "[http[s]://]host[:port][/path], e.g. 127.0.0.1:11434")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")


def _host_and_port(hostport: str, default_port: int) -> tuple[str, int]:
    """Split ``host[:port]``; an IPv6 host comes back without its brackets."""
    split = _split_host_port(hostport)
    if split is None:  # no port: the whole thing is the host
        host, port_text = hostport, ""
        bare = hostport.strip("[]")
        if _is_ip(bare):
            # Ollama prints IP literals in canonical form when they came without a port.
            host = ipaddress.ip_address(bare).compressed
    else:
        host, port_text = split
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else -1
    if not 0 <= port <= 65535:
        port = default_port
    return host or "127.0.0.1", port


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """``host:port`` or ``[v6]:port`` as Go's ``net.SplitHostPort`` reads it; None if no port."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or hostport[end + 1 : end + 2] != ":":
            return None
        host, port = hostport[1:end], hostport[end + 2 :]
        return None if ":" in port else (host, port)
    host, sep, port = hostport.rpartition(":")
    if not sep or ":" in host or "[" in host or "]" in host:
        return None  # no colon, or a bare IPv6 address whose colons are not a port separator
    return host, port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def with_tag(name: str) -> str:
    """Ollama's rule that a bare model name means its ``latest`` tag.

    >>> with_tag("all-minilm"), with_tag("smollm2:135m"), with_tag("host:5000/ns/m")
    ('all-minilm:latest', 'smollm2:135m', 'host:5000/ns/m:latest')
    """
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def parse_hosts(value: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """Base URLs of the hosts in ``value`` (comma-separated or several; None: $OLLAMA_HOST).

    Each entry follows :func:`parse_host`; repeats are dropped, the order
    kept; nothing (or only commas) means the local default.

    >>> parse_hosts("gpu1, gpu2:8080,gpu1")
    ('http://gpu1:11434', 'http://gpu2:8080')
    >>> parse_hosts(["a", "b,c"]), parse_hosts(" , ")
    (('http://a:11434', 'http://b:11434', 'http://c:11434'), ('http://127.0.0.1:11434',))
    """
    if value is None:
        value = Settings.from_env().ollama_host
    entries = split_hosts(value) if isinstance(value, str) else [
        e for v in value for e in split_hosts(v)]
    hosts = dict.fromkeys(parse_host(e) for e in entries)
    return tuple(hosts) or (parse_host(""),)

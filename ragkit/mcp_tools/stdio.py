"""Serving over stdio with a clean stdout: it carries the protocol and nothing else.

While it serves, the SDK points file descriptor 1 at stderr and writes the
protocol through a private copy, but only then.  :class:`ProtocolStdout`
covers the rest of the process's life: while the indexes open and the
backends are probed, and at exit, when Python flushes whatever a library
printed into ``sys.stdout``'s buffer, fd 1 is stderr as well.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["ProtocolStdout"]


class ProtocolStdout:
    """Inside ``with``, stdout goes to stderr, except while :meth:`serve` speaks MCP."""

    def __init__(self) -> None:
        self._wire: int | None = None

    def __enter__(self) -> ProtocolStdout:
        sys.stdout.flush()
        self._wire = os.dup(1)
        os.dup2(2, 1)
        return self

    def serve(self, server: MCPServer) -> None:
        """Speak MCP on the real stdout until the client closes stdin."""
        import anyio

        assert self._wire is not None, "use ProtocolStdout as a context manager"
        sys.stdout.flush()  # what was printed so far goes to stderr
        os.dup2(self._wire, 1)  # the SDK takes fd 1 over, and diverts it while serving
        try:
            anyio.run(server.run_stdio_async)
        finally:
            os.dup2(2, 1)

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()  # a library's unflushed print, to stderr
        if self._wire is not None:
            os.dup2(self._wire, 1)
            os.close(self._wire)
            self._wire = None

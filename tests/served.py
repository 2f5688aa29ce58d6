"""``ragkit serve``'s app on an ephemeral loopback port, in a thread, for tests.

``with Served(settings) as server:`` builds the app with the project's own
factory (:func:`ragkit.server.create_app`), runs it under uvicorn, and gives
``server.url``; ``server.log`` holds the access-log lines written so far.
"""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from typing import Any

import uvicorn

from ragkit.server import ServerSettings, create_app
from ragkit.server.app import bind

__all__ = ["Served"]


class Served:
    """A running server; use it as a context manager."""

    def __init__(self, settings: ServerSettings, *, listen_as: str | None = None,
                 **app_options: Any) -> None:
        self.settings = dataclasses.replace(settings, listen="127.0.0.1:0")
        #: The address the app is told it listens on (the socket stays on loopback).
        self.listen_as = listen_as
        self.app_options = app_options
        self.output = io.StringIO()
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def log(self) -> list[str]:
        """The access-log lines so far."""
        return self.output.getvalue().splitlines()

    def wait_for_log(self, part: str, timeout: float = 10.0) -> str:
        """The first access-log line containing ``part``, waiting for it up to ``timeout``.

        A line is written once its reply has gone out, so a client may see the
        reply a moment before the line exists.
        """
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log:
                if part in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no access-log line with {part!r} in {self.log}")
            time.sleep(0.01)

    def __enter__(self) -> Served:
        sock = bind(self.settings)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        told = dataclasses.replace(self.settings, listen=self.listen_as or self.settings.listen)
        app = create_app(told, log=self.output, **self.app_options)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)


def build_index(home: Any, host: str, folder: Any, name: str = "docs") -> None:
    """Index ``folder`` as ``name`` under ``home`` through the test Ollama at ``host``."""
    from ragkit import Index

    with Index.open(name, home=home, backend="ollama", host=host, create=True) as index:
        index.ingest([folder])


def settings_for(home: Any, host: str, **more: Any) -> ServerSettings:
    """Settings of a server over the indexes in ``home``, with the test Ollama upstream."""
    return ServerSettings(home=home, backend="ollama", host=host, timeout=30, **more)

"""Shared fixtures: a real HTTP server speaking Ollama's protocol, an in-process fake
backend, the CLI runner, and small corpora.

The helper modules next to this file (ollama_server, fake_backend, pdfgen) are importable
because pyproject.toml puts ``tests`` on pytest's ``pythonpath``.
"""

from __future__ import annotations

import os
import signal
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_backend import FakeBackend
from ollama_server import FakeOllama

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAGKIT_SHARED") or ROOT.parent / "shared")

# The Ctrl-C tests send SIGINT to ragkit processes. A shell that starts the suite in the
# background without job control (`make test &`, nohup in a script) leaves SIGINT ignored,
# and an ignored signal stays ignored across exec, so ragkit would never see it: give the
# signal back its default here, so that those tests test ragkit and not how we were started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def ollama():
    """A fresh Ollama-compatible server on a loopback port."""
    with FakeOllama() as server:
        yield server


@pytest.fixture
def home(monkeypatch, tmp_path):
    """A private index home, and no RAGKIT_* setting from the caller's environment."""
    home = tmp_path / "indexes"
    monkeypatch.setenv("RAGKIT_HOME", str(home))
    # The fakes' hashed embeddings are not on all-minilm's similarity scale.
    monkeypatch.setenv("RAGKIT_MIN_SCORE", "0")
    for name in ("RAGKIT_INDEX", "RAGKIT_EMBED_MODEL", "RAGKIT_CHAT_MODEL", "RAGKIT_TIMEOUT",
                 "RAGKIT_BACKEND", "OLLAMA_HOST"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def env(monkeypatch, home, ollama):
    """Point ragkit at the test server and a private index home."""
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    monkeypatch.setenv("RAGKIT_BACKEND", "ollama")
    return home


@pytest.fixture
def fake_backend(home):
    """An in-process backend (no HTTP) with the test server's embeddings and replies."""
    return FakeBackend()


@pytest.fixture
def run(env):
    """Run the ``ragkit`` command in-process against the test server: ``run("ask", "q")``."""
    from ragkit.cli.main import cli

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def sleeps(monkeypatch):
    """Record the Ollama client's backoff sleeps instead of sleeping (the server's stay)."""
    import ragkit.backends.ollama

    delays: list[float] = []
    monkeypatch.setattr(ragkit.backends.ollama, "time", types.SimpleNamespace(sleep=delays.append))
    return delays


BACKUPS = """# Operations

## Backups

Backups run every night at 02:00 and are kept for thirty days.
Restores are done with the restore script in the tools folder.

## Monitoring

The monitoring dashboard shows disk usage, request latency and error rates.
Alerts go to the on-call engineer by pager.
"""

GARDEN = """Tomatoes need full sun and regular watering.
Basil grows well next to tomatoes and keeps some pests away.
"""

CHINESE = "# 简介\n\n熊猫主要生活在中国四川的山区。它们每天吃大量的竹子。\n"


@pytest.fixture
def docs(tmp_path):
    """A small folder: markdown with headings, plain text, Chinese and a two-page PDF."""
    from pdfgen import write_pdf

    root = tmp_path / "docs"
    (root / "ops").mkdir(parents=True)
    (root / "ops" / "backups.md").write_text(BACKUPS, encoding="utf-8")
    (root / "garden.txt").write_text(GARDEN, encoding="utf-8")
    (root / "panda.md").write_text(CHINESE, encoding="utf-8")
    write_pdf(root / "manual.pdf", [
        "The espresso machine must be descaled every month with citric acid.",
        "The warranty covers the pump for two years from the date of purchase.",
    ])
    return root


@dataclass(frozen=True)
class StoreChoice:
    """Where a test's indexes are kept: ``uri`` for ``Index.open(store=...)``, ``args`` for CLI."""

    name: str
    uri: str | None

    @property
    def args(self) -> list[str]:
        return ["--store", self.uri] if self.uri else []


@pytest.fixture(params=["local", "milvus-lite"])
def store(request, tmp_path):
    """Each store in turn: the local SQLite + FAISS store, then Milvus Lite (a ``.db`` file)."""
    if request.param == "local":
        return StoreChoice("local", None)
    return StoreChoice("milvus-lite", str(tmp_path / "milvus.db"))

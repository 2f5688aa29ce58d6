"""Shared fixtures: a real HTTP server speaking Ollama's protocol, and small corpora."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ helpers: ollama_server, pdfgen

from ollama_server import FakeOllama

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAGKIT_SHARED") or ROOT.parent / "shared")


@pytest.fixture
def ollama():
    """A fresh Ollama-compatible server on a loopback port."""
    with FakeOllama() as server:
        yield server


@pytest.fixture
def env(monkeypatch, tmp_path, ollama):
    """Point ragkit at the test server and a private index home."""
    home = tmp_path / "indexes"
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    monkeypatch.setenv("RAGKIT_HOME", str(home))
    monkeypatch.setenv("RAGKIT_BACKEND", "ollama")
    # The test server's hashed embeddings are not on all-minilm's similarity scale.
    monkeypatch.setenv("RAGKIT_MIN_SCORE", "0")
    for name in ("RAGKIT_INDEX", "RAGKIT_EMBED_MODEL", "RAGKIT_CHAT_MODEL", "RAGKIT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return home


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

"""``ragkit serve`` as a command: where it may listen, what it logs, how it stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from served import build_index

ROOT = Path(__file__).resolve().parents[1]


def ragkit(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "ragkit", "serve", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def started(process: subprocess.Popen) -> str:
    """The URL the server announced on stderr."""
    line = process.stderr.readline()
    found = re.search(r"on (http://\S+)", line)
    assert found, line
    return found.group(1)


def test_refuses_a_public_address_without_a_key(env):
    process = ragkit("--listen", "0.0.0.0:0")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.startswith("error: refusing to listen on 0.0.0.0:0 without an API key")
    assert "--insecure" in err and len(err.strip().splitlines()) == 1


def test_a_missing_index_stops_it_with_status_4(env):
    process = ragkit("--listen", "127.0.0.1:0", "--index", "nope")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 4 and err.startswith("error: no index 'nope'")


def test_serves_logs_and_stops_cleanly_on_ctrl_c(env, ollama, docs, tmp_path):
    build_index(tmp_path / "elsewhere", ollama.url, docs, name="manuals")
    process = ragkit("--listen", "127.0.0.1:0", "--index", str(tmp_path / "elsewhere" /
                                                                 "manuals"))
    try:
        url = started(process)
        names = [m["name"] for m in httpx.get(url + "/api/tags").json()["models"]]
        assert names[0] == "rag/manuals:latest"  # a path's index is named after its folder
        hits = httpx.post(url + "/indexes/manuals/search", json={"query": "backups"}).json()
        assert hits["hits"]
        access = process.stderr.readline() + process.stderr.readline()
        assert re.search(r"^ragkit: 127\.0\.0\.1 GET /api/tags 200 \d+ ms$", access, re.M)
        assert re.search(r"POST /indexes/manuals/search 200 \d+ ms$", access, re.M)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 130  # as any interrupted ragkit command (README)
    assert "Traceback" not in err


@pytest.mark.parametrize("listen", ["nowhere:port", "127.0.0.1:99999"])
def test_a_bad_listen_address_is_a_usage_error(env, listen):
    process = ragkit("--listen", listen)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2 and err.startswith(f"error: cannot listen on '{listen}'")

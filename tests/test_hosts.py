"""Several Ollama hosts: an ingest spreads over them, a failing host's work moves, queries
take the first healthy one.  Two real fake-Ollama servers on loopback (tests/ollama_server.py).
"""

from __future__ import annotations

import threading

import pytest
from ollama_server import FakeOllama, free_port

from ragkit.backends.host import parse_hosts
from ragkit.backends.hosts import HostPool


@pytest.fixture
def second():
    """A second Ollama-compatible server, next to the ``ollama`` fixture's."""
    with FakeOllama() as server:
        yield server


@pytest.fixture
def many(tmp_path):
    """Twelve small files: enough embedding requests (one chunk each at --batch-size 1)."""
    root = tmp_path / "many"
    root.mkdir()
    for n in range(12):
        (root / f"note{n:02d}.md").write_text(
            f"# Note {n}\n\nThe pump number {n} is serviced every {n + 2} weeks.\n",
            encoding="utf-8")
    return root


def _embeds(server: FakeOllama) -> int:
    return len(server.bodies("/api/embed"))


def _ingest(run, root, *hosts: str):
    args = ["ingest", str(root), "--batch-size", "1", "--parallel", "1"]
    for host in hosts:
        args += ["--host", host]
    return run(*args)


def _indexed(run) -> str:
    return run("indexes", "info", "default").output


def test_parse_hosts_reads_lists_and_repeats(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:1, 127.0.0.1:2")
    assert parse_hosts() == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert parse_hosts(["a", "a:11434", "b"]) == ("http://a:11434", "http://b:11434")


def test_ingest_spreads_batches_over_two_hosts(run, ollama, second, many):
    ollama.delay = second.delay = 0.05  # both busy at once: the second request needs the other
    result = _ingest(run, many, ollama.url, second.url)
    assert result.exit_code == 0, result.output
    assert "12 added" in result.output
    # One request each at a time per host (--parallel 1): the 12 chunks are shared out.
    assert _embeds(ollama) >= 3 and _embeds(second) >= 3
    assert "warning" not in result.stderr


def test_host_list_in_ollama_host_spreads_too(run, ollama, second, many, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"{ollama.url},{second.url}")
    ollama.delay = second.delay = 0.05
    result = _ingest(run, many)
    assert result.exit_code == 0, result.output
    assert _embeds(ollama) >= 3 and _embeds(second) >= 3


def test_failing_host_is_dropped_with_one_warning(run, ollama, second, many):
    second.fail("/api/embed", "drop", times=1000)  # every request to it: connection dropped
    ollama.delay = second.delay = 0.02
    result = _ingest(run, many, ollama.url, second.url)
    assert result.exit_code == 0, result.output
    assert "12 added" in result.output and "12 chunks embedded" in result.output
    assert _embeds(second) >= 1  # it was tried, and its batches were embedded elsewhere
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert second.url in warnings[0] and "leaving out" in warnings[0]


def test_host_dying_mid_ingest_hands_its_batch_over(run, ollama, second, many):
    ollama.delay = second.delay = 0.05

    def stop_after_first_request() -> None:
        while not _embeds(second):
            threading.Event().wait(0.005)
        # Connections it holds break off (a kept-alive one would outlive the listener),
        # and new ones find nobody listening.
        second.fail("/api/embed", "drop", times=1000)
        second.stop()

    killer = threading.Thread(target=stop_after_first_request)
    killer.start()
    result = _ingest(run, many, ollama.url, second.url)
    killer.join()
    assert result.exit_code == 0, result.output
    assert "12 added" in result.output
    assert sum("warning" in line for line in result.stderr.splitlines()) == 1, result.stderr
    search = run("search", "pump number 7", "--host", ollama.url, "-k", "12", "--json")
    assert search.output.count('"path"') == 12  # every file's chunk is in the index


def test_all_hosts_dead_is_the_one_line_error(run, many):
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    result = _ingest(run, many, *dead)
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot reach Ollama at {dead[0]} or {dead[1]} — ")
    assert not any("warning" in line for line in lines)


def test_queries_use_the_first_healthy_host(run, ollama, second, docs):
    assert run("ingest", str(docs), "--host", ollama.url).exit_code == 0
    before_first, before_second = _embeds(ollama), _embeds(second)
    for _ in range(3):
        result = run("search", "backups", "--host", ollama.url, "--host", second.url)
        assert result.exit_code == 0, result.output
    assert _embeds(ollama) == before_first + 3 and _embeds(second) == before_second
    result = run("ask", "When do backups run?", "--answer", "generate",
                 "--host", ollama.url, "--host", second.url)
    assert result.exit_code == 0, result.output
    asked = len(ollama.bodies("/api/chat")) + len(ollama.bodies("/api/generate"))
    assert asked == 1 and not second.bodies("/api/chat") and not second.bodies("/api/generate")


def test_queries_move_to_the_next_host_when_the_first_is_down(run, ollama, second, docs):
    assert run("ingest", str(docs), "--host", second.url).exit_code == 0
    dead = f"http://127.0.0.1:{free_port()}"
    result = run("ask", "When do backups run?", "--answer", "generate",
                 "--host", dead, "--host", second.url)
    assert result.exit_code == 0, result.output
    assert "02:00" in result.output
    assert second.bodies("/api/chat") or second.bodies("/api/generate")


def test_generation_moves_on_only_before_its_first_record(ollama, second):
    pool = HostPool([ollama.url, second.url], timeout=5)
    ollama.fail("/api/chat", 500)  # fails before any record: the next host answers
    messages = [{"role": "user", "content": "[1] Backups run nightly."}]
    text = "".join(c.text for c in pool.chat("smollm2:135m", messages))
    assert text and second.bodies("/api/chat")
    ollama.fail("/api/chat", "midstream")  # fails after records were shown: not re-run
    with pytest.raises(Exception, match="mid-reply"):
        "".join(c.text for c in pool.chat("smollm2:135m", messages))
    assert len(second.bodies("/api/chat")) == 1


def test_a_host_without_the_model_is_left_out_for_it(ollama, second):
    second.models.discard("all-minilm:latest")
    warned: list[str] = []
    pool = HostPool([second.url, ollama.url], timeout=5, per_host=1, warn=warned.append)
    for _ in range(3):
        assert pool.embed("all-minilm", ["pumps"]).shape == (1, 384)
    assert len(second.bodies("/api/embed")) == 1 and len(ollama.bodies("/api/embed")) == 3
    assert len(warned) == 1 and "has no model 'all-minilm'" in warned[0]


def test_in_flight_is_per_host(ollama, second):
    from ragkit.ingest.scheduler import in_flight

    pool = HostPool([ollama.url, second.url], timeout=5)
    assert in_flight(pool, 3) == 6 and pool.per_host == 3
    assert in_flight(object(), 3) == 3


def test_doctor_checks_every_host(run, ollama, second):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run("doctor", "--host", ollama.url, "--host", dead, "--host", second.url)
    lines = result.stdout.splitlines()
    assert any(ollama.url in line and line.startswith("[ok ] ollama") for line in lines)
    assert any(second.url in line and line.startswith("[ok ] ollama") for line in lines)
    # The dead one is a note, not a failure, while the others answer.
    assert any(dead in line and line.startswith("[-- ] ollama") for line in lines)


def test_models_pull_pulls_into_every_host(run, ollama, second, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"{ollama.url},{second.url}")
    result = run("models", "pull", "qwen2.5:7b")
    assert result.exit_code == 0, result.output
    assert ollama.has("qwen2.5:7b") and second.has("qwen2.5:7b")
    assert f"pulled qwen2.5:7b on {second.url}" in result.stdout

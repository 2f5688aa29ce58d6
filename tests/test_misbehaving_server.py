"""A server that misbehaves: unusable vectors, huge replies, trickles, redirects.

The client-level tests pin each fault's error and what is retried; the CLI
matrix at the end checks what a user sees: exit status 3, one error line,
and an index left exactly as it was.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from ollama_server import FakeOllama

from ragkit import Index
from ragkit.backends import transport
from ragkit.backends.base import Metrics, check_vectors
from ragkit.backends.ollama import OllamaClient
from ragkit.errors import ProtocolError, RequestTimeoutError, VectorError
from ragkit.retrieval import Hit

BROKEN = (" — the embedding model or the server is broken; see the `ollama serve` log, or pull "
          "the model again")
MISBEHAVES = (" — the server misbehaves; check that OLLAMA_HOST (or --host) is an Ollama server, "
              "and its log")
RETRY = "; retry, or raise the limit with --timeout / RAGKIT_TIMEOUT"
CHAT = [{"role": "user", "content": "[1] a.md\nThe sky is blue. It is big."}]


@pytest.fixture
def client(ollama, sleeps):
    return OllamaClient(ollama.url)


# -- vectors -------------------------------------------------------------------------------

UNUSABLE = {
    "nan": "has an unusable vector (2 of 2): NaN",
    "inf": "has an unusable vector (2 of 2): an infinite value",
    "1e300": "has an unusable vector (2 of 2): 1e+300, beyond float32's range",
    "string": "has an unusable vector (2 of 2): the string '0.25' among its numbers",
    "null": "has an unusable vector (2 of 2): null among its numbers",
    "nested": "has an unusable vector (2 of 2): a list among its numbers",
    "zeros": "has an unusable vector (2 of 2): all zeros (it would match nothing)",
    "ragged": "has an unusable vector (2 of 2): 383 numbers where the others have 384",
    "fewer": "holds 1 vectors for 2 texts",
}


@pytest.mark.parametrize("fault", sorted(UNUSABLE))
def test_unusable_vectors_are_refused_after_the_retries(client, ollama, sleeps, fault):
    ollama.fail("/api/embed", fault, times=10)
    with pytest.raises(VectorError) as info:
        client.embed("all-minilm", ["alpha", "beta"])
    assert str(info.value) == f"Ollama's /api/embed reply {UNUSABLE[fault]}{BROKEN}"
    assert len(ollama.bodies("/api/embed")) == 4  # asked again like a garbled reply, no more
    assert sleeps == [0.5, 1.0, 2.0]


def test_one_unusable_reply_is_cured_by_asking_again(client, ollama):
    ollama.fail("/api/embed", "nan")
    vectors = client.embed("all-minilm", ["alpha", "beta"])
    assert np.isfinite(vectors).all() and len(ollama.bodies("/api/embed")) == 2


def test_the_legacy_endpoint_is_checked_too(sleeps):
    with FakeOllama(legacy=True) as old:
        old.fail("/api/embeddings", "inf", times=10)
        with pytest.raises(VectorError, match=r"^Ollama's /api/embeddings reply has an unusable "
                                              r"vector \(1 of 1\): an infinite value"):
            OllamaClient(old.url).embed("all-minilm", ["alpha"])


def test_vectors_are_normalized_without_overflow_or_underflow():
    big, tiny = check_vectors([[3e37, 4e37], [3e-40, 4e-40]], 2, source="s", advice="a")
    assert np.allclose(big, [0.6, 0.8]) and np.allclose(tiny, [0.6, 0.8])
    with pytest.raises(VectorError, match=r"\(1 of 1\): a number beyond float32's range"):
        check_vectors([[10**400, 1]], 1, source="s", advice="a")
    with pytest.raises(VectorError, match=r"\(1 of 1\): true among its numbers"):
        check_vectors([[True, 0.5]], 1, source="s", advice="a")


def test_garbage_metrics_count_as_zero():
    record = {"eval_count": "many", "eval_duration": float("nan"), "total_duration": None,
              "load_duration": True, "prompt_eval_count": 12.0}
    assert Metrics.from_record(record) == Metrics(prompt_eval_count=12)


def test_the_embedded_engine_checks_its_vectors_too(monkeypatch):
    from ragkit.backends import embedded as engine

    backend = engine.EmbeddedBackend()
    if not backend.has_model(engine.EMBED_MODEL):
        pytest.skip("the embedded engine is not installed (`make setup`)")

    class NaNModel:
        def embed(self, texts, **kwargs):
            return [[float("nan")] * engine.EMBED_DIM for _ in texts]

    monkeypatch.setattr(engine._EMBEDDER, "llm", NaNModel())
    monkeypatch.setattr(engine, "_set_threads", lambda llm, threads: None)  # no llama.cpp ctx
    with pytest.raises(VectorError) as info:
        backend.embed(engine.EMBED_MODEL, ["alpha"])
    assert str(info.value) == (
        "the embedded engine has an unusable vector (1 of 1): NaN — its all-minilm may be "
        "damaged; reinstall it with `make setup`")


def test_json_output_never_holds_nan():
    hit = Hit(1, float("nan"), 7, "/d/a.md", "a.md", None, "", "text", cosine=float("inf"))
    shown = json.dumps(hit.as_dict(), allow_nan=False)
    assert json.loads(shown)["score"] is None and json.loads(shown)["cosine"] is None


# -- sizes ---------------------------------------------------------------------------------


def test_a_huge_embedding_reply_is_refused_at_its_cap(client, ollama):
    ollama.fail("/api/embed", "huge:5")
    with pytest.raises(ProtocolError) as info:
        client.embed("all-minilm", ["alpha"])
    assert str(info.value) == (
        "Ollama's reply to /api/embed is larger than 262 kB, the most one vector of up to 8192 "
        f"numbers can take{MISBEHAVES}")
    assert len(ollama.bodies("/api/embed")) == 1  # not asked again
    assert client.embed("all-minilm", ["alpha"]).shape == (1, 384)  # the next one is fine


def test_the_cap_grows_with_the_texts_of_the_request(client, ollama):
    ollama.fail("/api/embed", "huge:1")  # over the cap of one text, under that of 64
    with pytest.raises(ProtocolError, match="the most one vector"):
        client.embed("all-minilm", ["alpha"])
    ollama.fail("/api/embed", "huge:1", times=10)
    with pytest.raises(VectorError, match=r"holds 1 vectors for 64 texts"):
        client.embed("all-minilm", ["alpha"] * 64)  # read whole, then found wanting


def test_a_long_stream_line_is_read_whole_and_a_longer_one_refused(client, ollama):
    ollama.fail("/api/chat", "longline:4")
    first = next(iter(client.chat("smollm2:135m", CHAT)))
    assert first.text == "a" * 4_000_000
    ollama.fail("/api/chat", "longline:17")
    with pytest.raises(ProtocolError) as info:
        list(client.chat("smollm2:135m", CHAT))
    assert str(info.value) == (
        "a line of Ollama's stream on /api/chat is larger than 16 MB, ragkit's cap for one "
        f"record{MISBEHAVES}")


# -- time ----------------------------------------------------------------------------------


def test_a_trickled_reply_times_out_as_a_whole(ollama, sleeps):
    client = OllamaClient(ollama.url, timeout=0.3)
    ollama.fail("/api/embed", "trickle:0.02", times=10)  # a byte every 20 ms: no read times out
    with pytest.raises(RequestTimeoutError) as info:
        client.embed("all-minilm", ["alpha"])
    assert str(info.value) == (
        f"Ollama at {ollama.url} did not answer within 0.3 s — the model may still be loading"
        + RETRY)
    assert len(ollama.bodies("/api/embed")) == 4  # a timeout is worth another try


def test_a_trickled_stream_times_out(ollama):
    client = OllamaClient(ollama.url, timeout=0.3)
    ollama.fail("/api/chat", "trickle:0.02")
    with pytest.raises(RequestTimeoutError, match=r"did not answer within 0\.3 s"):
        list(client.chat("smollm2:135m", CHAT))


def test_a_stream_that_stops_midway_times_out(ollama):
    client = OllamaClient(ollama.url, timeout=1.0)
    ollama.fail("/api/chat", "stall:4")
    received = []
    with pytest.raises(RequestTimeoutError) as info:
        received.extend(client.chat("smollm2:135m", CHAT))
    assert str(info.value) == (
        f"Ollama at {ollama.url} paused for over 1 s in the middle of its reply — the server "
        "may be overloaded" + RETRY)
    assert received  # the first half arrived


def test_a_pause_caught_by_the_socket_timeout_is_still_a_pause(ollama, monkeypatch):
    # Under load the socket's own read timeout can fire before the watchdog thread does;
    # with the watchdog switched off it always does, and the message must not change.
    monkeypatch.setattr(transport.Deadline, "watch", lambda self, conn: None)
    client = OllamaClient(ollama.url, timeout=0.5)
    ollama.fail("/api/chat", "stall:2")
    received = []
    with pytest.raises(RequestTimeoutError, match=r"paused for over 0\.5 s in the middle"):
        received.extend(client.chat("smollm2:135m", CHAT))
    assert received


def test_a_stream_that_never_ends_hits_the_total_cap(ollama):
    client = OllamaClient(ollama.url, timeout=0.5)  # a record comes every 20 ms
    ollama.fail("/api/generate", "endless")
    with pytest.raises(RequestTimeoutError) as info:
        list(client.generate("smollm2:135m", "x"))
    assert str(info.value) == (
        f"Ollama at {ollama.url} did not finish its reply within 5 s (10 × the timeout) — the "
        "model may be rambling (cap it with -o num_predict=N)" + RETRY)


def test_a_slow_reader_is_not_the_servers_fault(ollama):
    client = OllamaClient(ollama.url, timeout=1.0)
    chunks = []
    for chunk in client.chat("smollm2:135m", CHAT):
        chunks.append(chunk)
        if len(chunks) < 3:
            time.sleep(1.5)  # the caller is busy for longer than the timeout
    assert chunks[-1].done and "".join(c.text for c in chunks).startswith("According to")


# -- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/embed", "/api/chat"])
def test_a_redirect_to_another_server_is_refused_and_sends_it_nothing(client, ollama, path):
    with FakeOllama() as other:
        ollama.fail(path, f"redirect:{other.url}{path}?x=1")
        with pytest.raises(ProtocolError) as info:
            if path == "/api/embed":
                client.embed("all-minilm", ["my secret notes"])
            else:
                list(client.chat("smollm2:135m", CHAT))
        assert other.requests == []
    assert str(info.value) == (
        f"Ollama at {ollama.url} redirected {path} to {other.url}{path}, another server — "
        "ragkit does not follow it, so your text was not sent there; if that is your Ollama, "
        f"set OLLAMA_HOST (or --host) to {other.url}")
    assert len(ollama.bodies(path)) == 1


def test_a_redirect_within_the_server_is_followed_with_the_same_body(client, ollama):
    ollama.fail("/api/embed", "redirect:/api/embed")
    assert client.embed("all-minilm", ["alpha"]).shape == (1, 384)
    assert ollama.bodies("/api/embed") == [{"model": "all-minilm", "input": ["alpha"]}] * 2


def test_a_redirect_loop_is_named_as_such(client, ollama):
    ollama.fail("/api/embed", "redirect:/api/embed", times=100)
    with pytest.raises(ProtocolError) as info:
        client.embed("all-minilm", ["alpha"])
    assert str(info.value) == (
        f"Ollama at {ollama.url} redirected /api/embed more than 5 times, in a loop — check "
        "OLLAMA_HOST (or --host) and any proxy in front of Ollama")
    assert len(ollama.bodies("/api/embed")) == 6


# -- what the user sees --------------------------------------------------------------------


def error_line(result) -> str:
    assert "Traceback" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if not ln.startswith("ragkit: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def indexed(home) -> list[tuple[str, str, bytes]]:
    with Index.open("default", home=home, backend="ollama") as index:
        return sorted(index._store._db.execute(
            "SELECT path, text, vector FROM chunks").fetchall())


STOPPED = " (ingest stopped: nothing new was indexed; run the same command again to finish)"
INGEST_FAULTS = {
    "nan": f"Ollama's /api/embed reply has an unusable vector (1 of 1): NaN{BROKEN}{STOPPED}",
    "inf": f"Ollama's /api/embed reply has an unusable vector (1 of 1): an infinite value{BROKEN}"
           f"{STOPPED}",
    "1e300": "Ollama's /api/embed reply has an unusable vector (1 of 1): 1e+300, beyond "
             f"float32's range{BROKEN}{STOPPED}",
    "string": "Ollama's /api/embed reply has an unusable vector (1 of 1): the string '0.25' "
              f"among its numbers{BROKEN}{STOPPED}",
    "dim:512": "'all-minilm' returned 512-dim vectors, but this index holds 384-dim ones — the "
               "model changed since the index was built; re-index with --rebuild, or embed "
               "with the model the index was built with (ingest stopped: nothing new was "
               "indexed)",
    "huge:100": "Ollama's reply to /api/embed is larger than 262 kB, the most one vector of up "
                f"to 8192 numbers can take{MISBEHAVES}{STOPPED}",
    "trickle:0.02": "Ollama at {url} did not answer within 0.3 s — the model may still be "
                    f"loading{RETRY}{STOPPED}",
    "redirect:{other}/api/embed": "Ollama at {url} redirected /api/embed to {other}/api/embed, "
                                  "another server — ragkit does not follow it, so your text was "
                                  "not sent there; if that is your Ollama, set OLLAMA_HOST (or "
                                  f"--host) to {{other}}{STOPPED}",
    "redirect:/api/embed": "Ollama at {url} redirected /api/embed more than 5 times, in a loop — "
                           "check OLLAMA_HOST (or --host) and any proxy in front of Ollama"
                           f"{STOPPED}",
}


@pytest.mark.parametrize("fault", list(INGEST_FAULTS))
def test_a_misbehaving_server_stops_the_ingest_and_nothing_is_written(
        run, docs, env, ollama, sleeps, fault):
    assert run("ingest", str(docs)).exit_code == 0
    before = indexed(env)
    (docs / "new.md").write_text("The kettle descales itself on Sundays.\n", encoding="utf-8")
    with FakeOllama() as other:
        ollama.fail("/api/embed", fault.format(other=other.url), times=100)
        timeout = ["--timeout", "0.3"] if fault.startswith("trickle") else []
        result = run("ingest", str(docs), *timeout)
        assert other.requests == []
    assert result.exit_code == 3, result.output
    expected = INGEST_FAULTS[fault].format(url=ollama.url, other=other.url)
    assert error_line(result) == f"error: {expected}"
    assert indexed(env) == before
    ollama.clear_faults()
    assert run("search", "kettle descales", "--json").exit_code == 0  # the index still works


def test_a_first_build_with_nan_vectors_leaves_no_index(run, docs, env, ollama, sleeps):
    ollama.fail("/api/embed", "nan", times=100)
    result = run("ingest", str(docs))
    assert result.exit_code == 3
    assert error_line(result).startswith("error: Ollama's /api/embed reply has an unusable vector")
    assert not (env / "default").exists()


def test_a_rebuild_with_nan_vectors_keeps_the_clean_index(run, docs, env, ollama, sleeps):
    assert run("ingest", str(docs)).exit_code == 0
    before = indexed(env)
    ollama.fail("/api/embed", "slow:0")  # the dimension probe goes through
    ollama.fail("/api/embed", "nan", times=100)
    result = run("ingest", str(docs), "--rebuild")
    assert result.exit_code == 3
    assert "NaN" in error_line(result)
    assert indexed(env) == before


def test_search_with_a_model_of_another_size_names_both_sizes(run, docs, ollama):
    assert run("ingest", str(docs)).exit_code == 0
    ollama.fail("/api/embed", "dim:512")
    result = run("search", "backups")
    assert result.exit_code == 4
    assert error_line(result) == (
        "error: 'all-minilm' now returns 512-dim vectors but index 'default' holds 384-dim ones "
        "— re-index with --rebuild")


def test_search_with_a_nan_query_vector_is_a_backend_error(run, docs, ollama, sleeps):
    assert run("ingest", str(docs)).exit_code == 0
    ollama.fail("/api/embed", "nan", times=100)
    result = run("search", "backups", "--json")
    assert result.exit_code == 3 and result.stdout == ""
    assert "NaN" in error_line(result)


def test_ask_with_an_endless_line_is_one_error_line(run, docs, ollama):
    assert run("ingest", str(docs)).exit_code == 0
    ollama.fail("/api/chat", "longline:17")
    result = run("ask", "When do backups run?")
    assert result.exit_code == 3
    assert error_line(result) == (
        "error: a line of Ollama's stream on /api/chat is larger than 16 MB, ragkit's cap for "
        f"one record{MISBEHAVES}")


def test_doctor_with_the_server_down_prints_its_report(run, env, monkeypatch):
    from ollama_server import free_port

    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    result = run("doctor", "--backend", "ollama")
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[ERR] ollama: no Ollama answers at http://127.0.0.1:")
    assert lines[1] == ("       fix: start it with `ollama serve`, or set OLLAMA_HOST (or "
                        "--host) to where it runs")
    assert any(ln.startswith("[ERR] model all-minilm: cannot reach Ollama") for ln in lines)
    assert any(ln.startswith("[-- ] index default: no index at") for ln in lines)

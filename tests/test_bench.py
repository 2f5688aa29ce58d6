"""``ragkit bench`` through click's CliRunner, against the Ollama-protocol test server.

Only the shape of the output is checked here: speed targets live in benchmarks/.
"""

from __future__ import annotations

import json
import re

import pytest

from ragkit.bench import DEFAULT_PROMPTS


def test_bench_generate_prints_a_table_per_prompt_and_a_total(run, ollama):
    result = run("bench", "--model", "smollm2:135m", "-n", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.count("median ") == len(DEFAULT_PROMPTS)
    assert re.search(r"^total\s+[\d.]+\s+\d+\s+\d+\s+[\d.]+\s+\(10 runs\)$", out, re.M)
    assert "time s" in out and "tok/s" in out
    # one warm-up plus 2 runs of each prompt
    assert len(ollama.bodies("/api/generate")) == 1 + 2 * len(DEFAULT_PROMPTS)


def test_bench_generate_json_with_a_prompts_file(run, tmp_path, ollama):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text('# a comment\nWhat is RAG?\n{"prompt": "Name a colour."}\n\n')
    result = run("bench", "generate", "-m", "smollm2:135m", "--prompts", str(prompts),
                 "-n", "3", "--json", "--no-warmup", "-o", "num_predict=4")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [p["prompt"] for p in data["prompts"]] == ["What is RAG?", "Name a colour."]
    first = data["prompts"][0]
    assert len(first["runs"]) == 3
    run0 = first["runs"][0]
    assert run0["input_tokens"] > 0 and 0 < run0["output_tokens"] <= 4
    assert run0["tokens_per_second"] > 0
    assert set(first["summary"]["seconds"]) == {"min", "median", "max"}
    assert data["total"]["runs"] == 6
    assert data["total"]["output_tokens"] == sum(
        r["output_tokens"] for p in data["prompts"] for r in p["runs"])
    assert all(b["options"]["num_predict"] == 4 for b in ollama.bodies("/api/generate"))


def test_bench_generate_refuses_an_empty_prompts_file(run, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    result = run("bench", "--prompts", str(empty))
    assert result.exit_code == 2
    assert "holds no prompts" in result.stderr


def test_bench_ingest_reports_throughput_and_leaves_no_index(run, docs, env, ollama):
    result = run("bench", "ingest", str(docs), "--batch-size", "2", "--parallel", "3")
    assert result.exit_code == 0, result.output
    assert re.search(r"ingest with all-minilm: 4 files, \d+ chunks", result.stdout)
    assert re.search(r"throughput: [\d.]+ chunks/s, [\d.]+ MB/s \(\d+ embedding requests of "
                     r"up to 2 chunks, 3 in flight\)", result.stdout)
    assert "embedding request latency: p50" in result.stdout
    assert not env.exists() or not any(env.iterdir())  # no index was left behind
    data = json.loads(run("bench", "ingest", str(docs), "--json").stdout)
    assert data["files"] == 4 and data["chunks"] > 4 and data["requests"] >= 1
    assert set(data["request_latency"]) == {"p50_ms", "p90_ms", "p99_ms", "max_ms"}


def test_bench_search_reports_latency_percentiles(run, docs):
    assert run("ingest", str(docs)).exit_code == 0
    result = run("bench", "search", "-n", "2", "--count", "5")
    assert result.exit_code == 0, result.output
    assert re.search(r"index 'default': \d+ chunks, hybrid search, k=5: \d+ searches",
                     result.stdout)
    for label in ("whole search", "query embedding", "search without embedding"):
        assert re.search(rf"^{label}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", result.stdout, re.M)
    data = json.loads(run("bench", "search", "--json", "--retrieval", "vector", "-k", "2",
                          "-n", "1").stdout)
    assert data["mode"] == "vector" and data["searches"] == data["queries"] > 0
    assert data["total"]["p50_ms"] >= data["search_without_embedding"]["p50_ms"]


def test_bench_search_with_a_queries_file_and_a_missing_index(run, docs, tmp_path):
    assert run("bench", "search", "--index", "nothing-here").exit_code == 4
    assert run("ingest", str(docs)).exit_code == 0
    queries = tmp_path / "q.txt"
    queries.write_text("backups\npanda bamboo\n")
    data = json.loads(run("bench", "search", "--queries", str(queries), "--json", "-n", "1").stdout)
    assert data["queries"] == 2 and data["searches"] == 2


def test_every_bench_command_has_help(run):
    for args in (["bench", "--help"], ["bench", "generate", "--help"],
                 ["bench", "ingest", "--help"], ["bench", "search", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and "Usage: " in result.stdout


def test_pipelined_ingest_commits_the_same_index_as_one_request_at_a_time(tmp_path, docs):
    import numpy as np

    from ragkit.chunking import ChunkerSettings
    from ragkit.ingest.pipeline import ingest
    from ragkit.store.local import Store

    sizes: list[int] = []

    def embed(texts):
        sizes.append(len(texts))
        return np.eye(8, dtype=np.float32)[[len(t) % 8 for t in texts]]

    built = {}
    for parallel in (1, 4):
        store = Store.create(tmp_path / f"p{parallel}", {"embed_model": "m", "dimension": 8})
        report = ingest(store, [docs], embed, chunker=ChunkerSettings(size=16, overlap=0),
                        batch_size=2, parallel=parallel)
        assert not report.failed and len(report.added) == 4
        ids = store.chunk_ids(sorted(store.files()))
        built[parallel] = sorted((c.path, c.start, c.text) for c in store.chunks(ids).values())
        store.close()
    assert built[1] == built[4] and len(built[1]) > 8
    assert max(sizes) <= 2  # requests never exceed the batch size


def test_a_failed_request_stops_a_pipelined_ingest_keeping_whole_files(tmp_path, docs):
    import numpy as np

    from ragkit.chunking import ChunkerSettings
    from ragkit.errors import ServerError
    from ragkit.ingest.pipeline import ingest
    from ragkit.store.local import Store

    calls = []

    def embed(texts):
        calls.append(texts)
        if len(calls) == 3:
            raise ServerError(500, "runner stopped")
        return np.ones((len(texts), 8), dtype=np.float32) / 8**0.5

    store = Store.create(tmp_path / "idx", {"embed_model": "m", "dimension": 8})
    with pytest.raises(ServerError):
        ingest(store, [docs], embed, chunker=ChunkerSettings(size=16, overlap=0),
               batch_size=1, parallel=3)
    for record in store.files().values():  # every committed file has all its chunks
        assert len(store.chunk_ids([record.path])) == record.chunks
    store.close()


def test_default_parallel_follows_the_environment(monkeypatch):
    from ragkit.ingest.scheduler import default_parallel

    monkeypatch.delenv("RAGKIT_PARALLEL", raising=False)
    monkeypatch.delenv("OLLAMA_NUM_PARALLEL", raising=False)
    assert default_parallel() == 2
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "4")
    assert default_parallel() == 5
    monkeypatch.setenv("RAGKIT_PARALLEL", "3")
    assert default_parallel() == 3

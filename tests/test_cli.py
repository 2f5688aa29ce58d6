"""Every command through click's CliRunner, against a real Ollama-protocol server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ragkit.cli.main import cli

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def indexed(run, docs):
    result = run("ingest", str(docs))
    assert result.exit_code == 0, result.output
    return docs


def test_ingest_prints_a_summary(run, docs):
    result = run("ingest", str(docs))
    assert result.exit_code == 0
    assert re.search(r"index 'default': 4 added, 0 updated, 0 removed, 0 unchanged, "
                     r"0 skipped, 0 failed; \d+ chunks embedded, \d+ in the index; [\d.]+ s, "
                     r"[\d.]+ chunks/s$",
                     result.stdout)
    assert "ragkit: using Ollama at http://127.0.0.1:" in result.stderr


def test_ingest_reports_bad_files_and_exits_5(run, docs):
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00" * 100)
    (docs / "empty.md").write_text("")
    result = run("ingest", str(docs))
    assert result.exit_code == 5
    assert re.search(r"skipped .*blob\.txt: binary file", result.stderr)
    assert re.search(r"failed .*empty\.md: empty file", result.stderr)
    assert "4 added" in result.stdout


def test_search_lists_hits_and_json_has_scores(run, indexed):
    result = run("search", "When do backups run?", "-k", "2")
    assert result.exit_code == 0
    first = result.stdout.splitlines()[0]
    assert re.match(r"1\. score \d\.\d{3}  cosine \d\.\d{3}  .*backups\.md — Operations > Backups$",
                    first)
    data = json.loads(run("search", "warranty pump", "-k", "1", "--json").stdout)
    hit = data["hits"][0]
    assert hit["page"] == 2 and hit["source"].endswith("manual.pdf")
    assert 0 < hit["score"] <= 1.0 and set(hit) >= {"text", "heading", "path", "rank"}


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
def test_search_prints_the_score_that_ranks_and_the_cosine_labelled(run, indexed, mode):
    args = ("search", "When do backups run? monitoring dashboard", "-k", "4", "--retrieval", mode)
    hits = json.loads(run(*args, "--json").stdout)["hits"]
    lines = [ln for ln in run(*args).stdout.splitlines() if re.match(r"\d+\. ", ln)]
    ranks = "" if mode == "vector" else "score {score:.3f}  "  # in vector mode, the cosine
    expected = [f"{h['rank']}. " + (ranks + "cosine {cosine:.3f}  ").format(**h) for h in hits]
    assert len(hits) >= 2 and len(lines) == len(hits)
    assert [ln[: len(e)] for ln, e in zip(lines, expected, strict=True)] == expected
    ranking = [h["cosine" if mode == "vector" else "score"] for h in hits]
    assert ranking == sorted(ranking, reverse=True)


def test_ask_streams_the_answer_then_the_sources(run, indexed):
    result = run("ask", "When do backups run?")
    assert result.exit_code == 0
    answer, sources = result.stdout.split("\n\nSources:\n")
    assert "02:00" in answer and "[1]" in answer
    assert re.fullmatch(r"\[1\] .*backups\.md\n", sources)


def test_ask_json_and_options(run, indexed, ollama):
    result = run("ask", "descaling?", "--json", "--mode", "generate", "-o", "temperature=0",
                 "-o", "stop=END", "-o", "num_ctx=8192")
    data = json.loads(result.stdout)
    assert set(data) >= {"answer", "sources", "metrics", "cited", "found"}
    assert data["mode"] == "generate" and data["metrics"]["eval_count"] > 0
    body = [r for r in ollama.requests if r[1] == "/api/generate"][-1][2]
    assert body["options"]["temperature"] == 0
    assert body["options"]["stop"] == ["END"]
    assert body["options"]["num_ctx"] == 8192


def test_chat_keeps_history_and_exits_on_eof(run, indexed, ollama):
    ollama.models.add("qwen2.5:7b")
    result = run("chat", "--model", "qwen2.5:7b",
                 input="When do backups run?\nAnd the monitoring?\n")
    assert result.exit_code == 0
    assert result.stdout.count("Sources:") == 2
    second = [r for r in ollama.requests if r[1] == "/api/chat"][-1][2]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[1]["content"] == "When do backups run?"


def test_chat_sends_the_demo_model_no_earlier_answer_to_repeat(run, indexed, ollama):
    result = run("chat", input="When do backups run?\nAnd the monitoring?\n")
    assert result.exit_code == 0 and result.stdout.count("Sources:") == 2
    second = [r for r in ollama.requests if r[1] == "/api/chat"][-1][2]["messages"]
    assert [m["role"] for m in second] == ["system", "user"]
    assert second[1]["content"].startswith("Question: And the monitoring?")
    # The follow-up is still searched together with the question before it.
    # (the grounding check embeds the answers' sentences too: find the query among them)
    inputs = [r[2]["input"] for r in ollama.requests if r[1] == "/api/embed"]
    assert ["When do backups run?\nAnd the monitoring?"] in inputs


def test_chat_echoes_piped_questions_so_the_transcript_reads(run, indexed):
    result = run("chat", input="When do backups run?\n\nAnd the monitoring?\n")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    asked = [ln for ln in lines if ln.startswith("> ")]
    assert asked == ["> When do backups run?", "> And the monitoring?"]  # blank line: not a turn
    first, second = (lines.index(q) for q in asked)
    assert lines[first - 1] == "" and "Sources:" in lines[first:second]
    assert "Sources:" in lines[second:]


def test_chat_survives_a_failed_turn_and_keeps_its_history(run, indexed, ollama):
    ollama.models.add("qwen2.5:7b")
    ollama.fail("/api/chat", "midstream")
    result = run("chat", "--model", "qwen2.5:7b",
                 input="When do backups run?\nWhen do backups run?\nAnd monitoring?\n")
    assert result.exit_code == 0
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and errors[0].endswith(
        "then retry — the question was not answered; ask again")
    assert result.stdout.count("Sources:") == 2
    # The failed turn left no trace in the history the model sees.
    last = [r for r in ollama.requests if r[1] == "/api/chat"][-1][2]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user"]


def test_chat_stops_on_a_model_it_can_never_use(run, indexed):
    result = run("chat", "--model", "llama3", input="When do backups run?\nAgain?\n")
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == (
        "error: model 'llama3' not found — run `ollama pull llama3`")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "x", "--index", "nope"], 4,
         "error: no index 'nope' in {home} (RAGKIT_HOME) — if it is elsewhere, pass --index "
         "PATH/TO/nope or set RAGKIT_HOME to the folder holding it; else build it with "
         "`ragkit ingest PATH --index nope`"),
        (["ask", "   "], 2, "error: the question is empty — ask something"),
        (["search", "x", "-k", "0"], 2, "error: -k must be between 1 and 1000, got 0"),
        (["ask", "x", "-o", "temperature"], 2,
         "error: option 'temperature' must look like key=value (e.g. -o temperature=0)"),
        (["ask", "x", "--model", "llama3"], 3,
         "error: model 'llama3' not found — run `ollama pull llama3`"),
    ],
)
def test_user_errors_are_one_line_with_exit_status(run, indexed, env, args, code, message):
    result = run(*args)
    assert result.exit_code == code
    assert result.stderr.strip().splitlines()[-1] == message.format(home=env)


def test_unreachable_server_is_one_line(run, indexed, monkeypatch, ollama):
    from ollama_server import free_port

    host = f"http://127.0.0.1:{free_port()}"
    result = run("search", "x", "--host", host)
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot reach Ollama at {host} — is `ollama serve` running?")


def test_invalid_option_is_a_usage_error(run):
    result = run("search", "x", "--bogus")
    assert result.exit_code == 2
    assert "No such option '--bogus'" in result.stderr


def test_indexes_list_info_delete(run, indexed):
    assert run("indexes", "list").stdout.startswith("default\tall-minilm\t")
    info = json.loads(run("indexes", "info").stdout)
    assert info["files"] == 4 and info["embed_model"] == "all-minilm"
    refused = run("indexes", "delete", "default")
    assert refused.exit_code == 2 and "without --yes" in refused.stderr
    assert run("indexes", "delete", "default", "--yes").stdout == "deleted index 'default'\n"
    assert run("search", "x").exit_code == 4


def test_models_commands_go_through_ollama(run, ollama):
    listed = run("models", "list").stdout
    assert "all-minilm:latest\tollama\t46 MB\n" in listed and "smollm2:135m\tollama" in listed
    shown = json.loads(run("models", "show", "all-minilm").stdout)
    assert shown["embedding_length"] == 384 and shown["context_length"] == 512
    assert run("models", "cp", "smollm2:135m", "mine").exit_code == 0
    assert "mine" in run("models", "list").stdout
    assert run("models", "rm", "mine").stdout == "deleted mine\n"
    missing = run("models", "rm", "mine")
    assert missing.exit_code == 3 and "the server has no model 'mine' to delete" in missing.stderr
    assert run("models", "pull", "qwen2.5:0.5b").stdout.strip().endswith("pulled qwen2.5:0.5b")


def test_doctor_reports_each_check(run, indexed):
    result = run("doctor", "--backend", "ollama")
    assert result.exit_code == 0
    assert re.search(r"\[ok \] ollama: Ollama \S+ at http://127\.0\.0\.1:\d+, \d+ models",
                     result.stdout)
    assert "[ok ] model all-minilm: served by Ollama at" in result.stdout
    assert re.search(r"\[ok \] index default: 4 files, \d+ chunks, embedded with all-minilm",
                     result.stdout)


def test_doctor_fails_when_the_chat_model_is_missing(run, indexed):
    result = run("doctor", "--backend", "ollama", "--model", "llama3")
    assert result.exit_code == 1
    assert "fix: `ollama pull llama3`" in result.stdout


def test_doctor_fails_on_a_named_index_that_does_not_exist(run, env):
    # The default index not existing yet is a note; one the user names is a failure.
    assert run("doctor", "--backend", "ollama").exit_code == 0
    result = run("doctor", "--backend", "ollama", "--index", "notes")
    assert result.exit_code == 1
    assert f"[ERR] index notes: no index at {env / 'notes'}" in result.stdout
    assert "fix: build it: `ragkit ingest PATH --index notes`" in result.stdout


def _commands(group, prefix=""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_command_has_help_and_is_in_the_readme():
    readme = README.read_text(encoding="utf-8")
    for name, command in _commands(cli):
        assert command.help, f"`ragkit {name}` has no help text"
        top = name.split()[0]
        assert f"ragkit {top}" in readme, f"`ragkit {top}` is missing from the README"


def test_ask_refuses_with_exit_6_below_the_threshold(run, indexed, ollama):
    result = run("ask", "When do backups run?", "--min-score", "0.99")
    assert result.exit_code == 6
    assert result.stdout.startswith("The documents do not contain the answer.\n")
    assert not [r for r in ollama.requests if r[1] == "/api/chat"]


def test_search_and_ask_take_path_globs_and_diversity(run, indexed):
    data = json.loads(run("search", "pump backups tomatoes", "-k", "5", "--path", "*.pdf",
                          "--diversity", "0.3", "--json").stdout)
    assert data["hits"] and all(h["source"].endswith("manual.pdf") for h in data["hits"])
    assert all(-1 <= h["cosine"] <= 1 for h in data["hits"])
    result = run("ask", "When do backups run?", "--path", "*.pdf", "--json")
    assert all(s["source"].endswith(".pdf") for s in json.loads(result.stdout)["sources"])
    result = run("search", "pump", "--path", "*.docx")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no file in index 'default' matches --path '*.docx'")


def test_a_bug_is_one_line_not_a_traceback(run, indexed, monkeypatch):
    from ragkit import index

    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(index.Index, "search", broken)
    result = run("search", "pump")
    assert result.exit_code == 1
    assert result.stderr == ("error: internal error: ValueError: boom — please report it; "
                             "set RAGKIT_DEBUG=1 to see the traceback\n")


def test_ingest_parallel_option_reaches_the_pipeline(run, docs, monkeypatch):
    from ragkit import builds as index_module  # where Index.ingest runs the pipeline

    seen = []
    real = index_module.ingest

    def spy(*args, **kwargs):
        seen.append(kwargs["parallel"])
        return real(*args, **kwargs)

    monkeypatch.setattr(index_module, "ingest", spy)
    assert run("ingest", str(docs), "--parallel", "3").exit_code == 0
    assert seen == [3]
    assert run("ingest", str(docs), "--parallel", "0").exit_code == 2


def test_search_without_matches_says_so(run, indexed, env):
    assert run("search", "zzyzx", "--retrieval", "keyword").stdout == "no matches\n"


@pytest.mark.parametrize(("command", "said"), [
    (["search", "x"], "ragkit: interrupted"),
    (["ingest", "."], "ragkit: interrupted — whatever was committed is kept"),
])
def test_ctrl_c_says_what_was_kept_only_when_something_was_being_written(
        run, indexed, monkeypatch, command, said):
    from ragkit.index import Index

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Index, command[0], interrupted)
    result = run(*command)
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == said


@pytest.mark.parametrize("streamed", [False, True])
def test_a_bug_while_reading_files_stops_the_ingest_instead_of_losing_files(
        run, tmp_path, env, monkeypatch, streamed):
    from ragkit.ingest import prepare as preparing
    from ragkit.store.local import Store

    folder = tmp_path / "files"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_text(f"File {name} says something.\n" * 200)
    monkeypatch.setattr(preparing, "streams", lambda path, size: streamed)
    real = preparing._prepare_parts

    def parts_then_a_bug(found, *args):
        for n, item in enumerate(real(found, *args)):
            if found.path.name == "b.txt" and n == 1:  # (read whole, b.txt is one item)
                break
            yield item
        if found.path.name == "b.txt":
            raise ValueError("chunker bug")

    monkeypatch.setattr(preparing, "_prepare_parts", parts_then_a_bug)
    result = run("ingest", str(folder), "--batch-size", "2")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: internal error: ValueError: chunker bug")
    # Nothing of b.txt, or of the files after it, is in the index as if all went well.
    root = env / "default"
    files = set(Store.open(root).files()) if Store.exists(root) else set()
    assert files <= {str(folder / "a.txt")}


def test_chat_reports_a_question_too_long_for_num_ctx_and_goes_on(run, indexed, ollama):
    result = run("chat", "-o", "num_ctx=300", input="When do backups run?\nAnd restores?\n")
    assert result.exit_code == 0
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 2 and all(
        e.startswith("error: the rules, the question and the best passage need about")
        for e in errors)
    assert not ollama.bodies("/api/chat")


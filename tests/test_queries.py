"""AskOptions: one frozen object says how a question is answered, in the library and the CLI."""

from __future__ import annotations

import dataclasses

import pytest

from ragkit import AskOptions, Conversation, Index, UsageError
from ragkit.backends.ollama import OllamaClient
from ragkit.backends.ollama_records import GenerateOptions


def test_ask_options_are_frozen_all_the_way_down():
    ask = AskOptions(options={"num_ctx": 2048}, paths=["*.md"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        ask.k = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        ask.options["num_ctx"] = 1  # type: ignore[index]
    assert ask.paths == ("*.md",)
    assert ask.with_(k=2) == AskOptions(k=2, options={"num_ctx": 2048}, paths=("*.md",))


def test_an_unknown_ask_option_is_a_usage_error():
    with pytest.raises(UsageError, match=r"^unknown ask option 'top' — use one of: k, mode, "):
        AskOptions().with_(top=3)


def test_an_options_object_and_keywords_ask_the_same(env, docs, ollama):
    with Index.open("t", create=True, backend="ollama") as index:
        index.ingest([docs])
        by_object = index.ask("When do backups run?", AskOptions(k=2, answer="generate"))
        by_keywords = index.ask("When do backups run?", k=2, answer="generate")
        overridden = index.ask("When do backups run?", AskOptions(k=3), k=2, answer="generate")
    first, second, third = ollama.bodies("/api/chat")[-3:]
    assert first == second == third
    assert by_object.text == by_keywords.text == overridden.text
    assert len(by_object.sources) == 2


def test_a_conversation_always_asks_in_chat_mode(fake_backend):
    session = Conversation(None, AskOptions(mode="generate", k=2), force=True)  # type: ignore[arg-type]
    assert (session.ask.mode, session.ask.k, session.ask.force) == ("chat", 2, True)


def test_generate_takes_an_options_object_or_keywords(ollama):
    client = OllamaClient(ollama.url)
    list(client.generate("smollm2:135m", "hi", GenerateOptions(system="be brief", raw=False)))
    list(client.generate("smollm2:135m", "hi", system="be brief"))
    client.generate_full("smollm2:135m", "hi", GenerateOptions(suffix="!"), keep_alive=0)
    plain, keywords, full = ollama.bodies("/api/generate")
    assert plain == keywords == {"model": "smollm2:135m", "prompt": "hi", "system": "be brief",
                                 "stream": True}
    assert full == {"model": "smollm2:135m", "prompt": "hi", "keep_alive": 0, "suffix": "!",
                    "stream": False}
    with pytest.raises(TypeError):
        client.generate("smollm2:135m", "hi", temperature=0)


def test_the_retrieval_modes_are_written_once():
    from ragkit.cli.admin import evaluate
    from ragkit.cli.bench import bench
    from ragkit.cli.main import cli
    from ragkit.queries import ANSWER_MODES, PROMPT_MODES, RETRIEVAL_MODES
    from ragkit.retrieval import MODES
    from ragkit.server.native_api import AskBody, SearchBody

    def choices(command, name):
        return tuple(next(p for p in command.params if p.name == name).type.choices)

    assert MODES == RETRIEVAL_MODES == ("hybrid", "vector", "keyword")
    for command in (cli.commands["search"], cli.commands["ask"], cli.commands["chat"]):
        assert choices(command, "retrieval") == RETRIEVAL_MODES
    assert choices(bench.commands["search"], "mode") == RETRIEVAL_MODES
    assert choices(cli.commands["ask"], "mode") == PROMPT_MODES
    assert choices(cli.commands["ask"], "answer_mode") == ANSWER_MODES
    assert choices(evaluate, "answer_mode") == ANSWER_MODES
    for body in (SearchBody, AskBody):
        assert tuple(body.model_json_schema()["properties"]["retrieval"]["enum"]) == MODES
    assert tuple(AskBody.model_json_schema()["properties"]["mode"]["enum"]) == PROMPT_MODES


def test_the_inventory_of_a_home(tmp_path, fake_backend):
    from ragkit.inventory import IndexEntry, folder_size, list_indexes

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Backups run nightly at 02:00.\n", encoding="utf-8")
    home = tmp_path / "home"
    with Index.open(home / "good", create=True, backend=fake_backend) as index:
        index.ingest([docs])
        info = index.info()
    for name, manifest in (("newer", '{"format_version": 999}'), ("broken", "{")):
        (home / name).mkdir()
        (home / name / "manifest.json").write_text(manifest, encoding="utf-8")
    (home / "not-an-index").mkdir()
    found = list_indexes(home)
    assert [(e.name, e.state) for e in found] == [
        ("broken", "damaged"), ("good", "ok"), ("newer", "newer")]
    assert found[1] == IndexEntry("good", home / "good", info["embed_model"], "ok",
                                  folder_size(home / "good"))
    assert (info["name"], info["files"]) == ("good", 1) and info["size"] > 0
    assert info["chunks"] >= 1 and list_indexes(tmp_path / "nowhere") == []

"""Choosing the backend per model (``--backend auto|ollama|embedded``)."""

from __future__ import annotations

import pytest
from ollama_server import FakeOllama, free_port

from ragkit.backends.chooser import BackendChooser
from ragkit.errors import ModelNotFoundError, UsageError

needs_engine = pytest.mark.skipif(
    not BackendChooser("embedded").embedded().has_model("all-minilm"),
    reason="the embedded engine is installed by `make setup`")


def chooser(host: str, choice: str = "auto") -> tuple[BackendChooser, list[str]]:
    said: list[str] = []
    return BackendChooser(choice, host=host, announce=said.append), said


def test_auto_uses_ollama_for_the_models_it_has(ollama):
    pick, said = chooser(ollama.url)
    assert pick.for_model("all-minilm").name == "ollama"
    assert pick.for_model("smollm2:135m").name == "ollama"
    assert said == [f"using Ollama at {ollama.url}"]  # once, however many models


@needs_engine
def test_auto_falls_back_per_model_and_says_each_backend_once():
    with FakeOllama(models=["all-minilm:latest"]) as server:
        pick, said = chooser(server.url)
        assert [pick.for_model(m).name for m in ("all-minilm", "smollm2:135m", "all-minilm",
                                                  "smollm2:135m")] == [
            "ollama", "embedded", "ollama", "embedded"]
    assert said == [f"using Ollama at {server.url}", "using the embedded engine (llama.cpp)"]


@needs_engine
def test_auto_without_a_server_uses_the_embedded_engine():
    pick, said = chooser(f"http://127.0.0.1:{free_port()}")
    assert pick.for_model("all-minilm").name == "embedded"
    assert said == ["using the embedded engine (llama.cpp)"]
    with pytest.raises(ModelNotFoundError) as info:
        pick.for_model("llama3")
    assert str(info.value) == (
        f"model 'llama3' is not available: no Ollama answers at {pick.host} and the embedded "
        "engine does not have it (it has all-minilm, smollm2:135m) — start `ollama serve`, then "
        "`ollama pull llama3`")


def test_auto_with_a_server_that_has_no_models_gives_ollamas_advice():
    with FakeOllama(models=[]) as server:
        pick, _ = chooser(server.url)
        backend = pick.for_model("llama3")
        assert backend.name == "ollama"
        with pytest.raises(ModelNotFoundError, match=r"^model 'llama3' not found — run "):
            backend.embed("llama3", ["x"])


@needs_engine
def test_embedded_lists_what_it_has():
    pick, _ = chooser("http://127.0.0.1:9", "embedded")
    with pytest.raises(ModelNotFoundError) as info:
        pick.for_model("qwen2.5:7b")
    assert str(info.value) == (
        "the embedded engine has no model 'qwen2.5:7b' (it has all-minilm, smollm2:135m) — for "
        "other models run Ollama: `ollama pull qwen2.5:7b` and use --backend ollama")


@pytest.mark.parametrize(("args", "message"), [
    ({"choice": "gpu"}, "unknown backend 'gpu' — use one of: auto, ollama, embedded"),
    ({"choice": "embedded", "timeout": 0}, "the timeout must be a positive number of seconds, "
                                           "got 0"),
])
def test_bad_settings_are_usage_errors(args, message):
    with pytest.raises(UsageError) as info:
        BackendChooser(args.pop("choice"), **args)
    assert str(info.value) == message

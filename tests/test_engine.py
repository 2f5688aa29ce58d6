"""The embedded engine with the real models: reference vectors, real streamed generation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from ragkit.backend import collect
from ragkit.convert import ensure_minilm_gguf, minilm_gguf_path
from ragkit.engine import EmbeddedBackend
from ragkit.errors import BackendError, ModelNotFoundError

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason="the embedded engine is installed by `make setup`")

FIXTURE = SHARED / "fixtures" / "all-minilm-reference.json"


@pytest.fixture(scope="module")
def engine():
    return EmbeddedBackend()


def test_vectors_match_sentence_transformers_reference(engine):
    items = json.loads(FIXTURE.read_text(encoding="utf-8"))["items"]
    vectors = engine.embed("all-minilm", [item["text"] for item in items])
    reference = np.array([item["embedding"] for item in items], dtype=np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip([i["text"][:30] for i in items], cosines))


def test_converted_gguf_has_the_bert_metadata(engine):
    import gguf

    reader = gguf.GGUFReader(str(ensure_minilm_gguf()))

    def value(key):
        field = reader.fields[key]
        raw = field.parts[field.data[0]]
        return bytes(raw).decode() if raw.dtype == np.uint8 else raw.tolist()[0]

    assert value("general.architecture") == "bert"
    expected = {"bert.block_count": 6, "bert.context_length": 512, "bert.embedding_length": 384,
                "bert.feed_forward_length": 1536, "bert.attention.head_count": 12,
                "bert.pooling_type": 1, "tokenizer.ggml.bos_token_id": 101,
                "tokenizer.ggml.seperator_token_id": 102, "tokenizer.ggml.padding_token_id": 0}
    for key, want in expected.items():
        assert value(key) == want, key
    assert value("bert.attention.causal") is False
    assert value("bert.attention.layer_norm_epsilon") == pytest.approx(1e-12)
    assert value("tokenizer.ggml.model") == "bert"
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "position_embd.weight", "token_types.weight",
            "token_embd_norm.weight", "blk.5.attn_q.bias", "blk.5.ffn_down.weight",
            "blk.5.layer_output_norm.weight", "blk.0.attn_output_norm.bias"} <= names


def test_conversion_is_cached(engine):
    path = ensure_minilm_gguf()
    before = path.stat()
    assert ensure_minilm_gguf() == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_two_processes_converting_at_once_both_get_a_valid_file(tmp_path):
    code = ("from ragkit.convert import ensure_minilm_gguf; "
            "print(ensure_minilm_gguf())")
    env = {**os.environ, "RAGKIT_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] == str(minilm_gguf_path(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [Path(outs[0]).name]  # no temp files left
    engine = EmbeddedBackend()
    assert engine.embed("all-minilm", ["works"]).shape == (1, 384)


def test_embedding_never_loads_the_generator():
    fresh = EmbeddedBackend()
    fresh.embed("all-minilm", ["one"])
    fresh.embed("all-minilm", ["two"])
    assert fresh._generator is None and fresh.loads == 1


def test_unknown_model_lists_what_the_engine_has(engine):
    with pytest.raises(ModelNotFoundError) as info:
        engine.embed("nomic-embed-text", ["x"])
    assert str(info.value) == (
        "the embedded engine has no model 'nomic-embed-text' (it has all-minilm, smollm2:135m)"
        " — for other models run Ollama: `ollama pull nomic-embed-text`, then use "
        "--backend ollama")
    with pytest.raises(BackendError, match="'all-minilm' cannot generate text"):
        engine.generate("all-minilm", "hi")
    with pytest.raises(BackendError, match="cannot read images"):
        engine.generate("smollm2:135m", "hi", images=["aGk="])


def test_streamed_generation_reports_ollama_metrics(engine):
    chunks = list(engine.chat("smollm2:135m", [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."}], options={"num_predict": 24, "seed": 1}))
    assert len(chunks) > 3 and chunks[-1].done and not any(c.done for c in chunks[:-1])
    m = chunks[-1].metrics
    assert 0 < m.eval_count <= 24 and m.prompt_eval_count > 5
    assert m.total_duration >= m.eval_duration > 0 and m.prompt_eval_duration > 0
    assert chunks[-1].done_reason in ("stop", "length")


def test_num_predict_seed_and_stop_are_honoured(engine):
    opts = {"num_predict": 5, "temperature": 0.9, "seed": 42}
    first = collect(engine.generate("smollm2:135m", "Write a story about a dog.", options=opts))
    again = collect(engine.generate("smollm2:135m", "Write a story about a dog.", options=opts))
    assert first.done_reason == "length" and first.metrics.eval_count <= 5
    assert first.text == again.text
    raw = collect(engine.generate("smollm2:135m", "1, 2, 3, 4,", raw=True,
                                  options={"temperature": 0, "num_predict": 30, "stop": ["7"]}))
    assert "7" not in raw.text and raw.done_reason == "stop"
    assert raw.text.strip().startswith("5")

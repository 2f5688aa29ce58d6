"""Which index ``ragkit eval`` scores a BEIR set in (shared by plain runs and --calibrate)."""

from __future__ import annotations

from typing import Any


def eval_index_options(opts: dict[str, Any], data: Any, chunker: Any = None,
                       store: str | None = None) -> dict[str, Any]:
    """The shared options, naming the hidden eval index of ``data`` unless --index named one.

    See :func:`ragkit.evaluate.eval_index_path`: one index per set, model, chunking and store.
    """
    from ..evaluate import eval_index_path
    from ..home import index_home
    from ..models import DEFAULT_EMBED_MODEL

    if opts["index_name"] != "default":
        return opts
    model = opts["embed_model"] or DEFAULT_EMBED_MODEL
    chunking = (chunker.size, chunker.overlap) if chunker is not None else None
    path = eval_index_path(index_home(), data.name, model, chunking, store)
    return {**opts, "index_name": str(path)}

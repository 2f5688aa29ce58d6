"""What the Ollama client sends and gets back, as frozen dataclasses, not raw dicts.

:class:`GenerateOptions` is what an ``/api/generate`` request carries besides the
model, prompt and model options; the others are read from Ollama's replies:
:class:`ModelEntry` (``/api/tags``, ``/api/ps``), :class:`PullProgress`
(``/api/pull``) and :class:`ModelInfo` (``/api/show``).  Fields a reply leaves
out (older servers) take their empty defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["GenerateOptions", "ModelEntry", "ModelInfo", "PullProgress"]

Format = str | Mapping[str, Any] | None


@dataclass(frozen=True)
class GenerateOptions:
    """The fields of an ``/api/generate`` request besides model, prompt and ``options``.

    >>> GenerateOptions(system="be brief").with_(raw=False).fields()
    {'system': 'be brief'}
    """

    system: str | None = None
    #: The prompt is used verbatim: no template, no system prompt.
    raw: bool = False
    keep_alive: str | float | None = None
    #: ``"json"`` or a JSON schema.
    format: Format = None
    images: Sequence[str] | None = None
    template: str | None = None
    #: The ``context`` of an earlier reply (Ollama's deprecated conversation memory).
    context: Sequence[int] | None = None
    suffix: str | None = None

    def with_(self, **changes: Any) -> GenerateOptions:
        """A copy with ``changes``; an unknown field is a TypeError, as a bad keyword is."""
        return replace(self, **changes) if changes else self

    def fields(self) -> dict[str, Any]:
        """The request fields that are set (``raw`` only when true)."""
        values = {"system": self.system, "raw": True if self.raw else None,
                  "keep_alive": self.keep_alive, "format": self.format, "images": self.images,
                  "template": self.template, "context": self.context, "suffix": self.suffix}
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class ModelEntry:
    """One model of ``/api/tags`` (what the server has) or ``/api/ps`` (what is loaded)."""

    name: str
    size: int = 0
    digest: str = ""
    modified_at: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    #: ``/api/ps`` only: when the model unloads, and its context window as loaded.
    expires_at: str = ""
    context_length: int | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ModelEntry:
        """Build from one record of a reply's ``models`` list."""
        size = record.get("size")
        window = record.get("context_length")
        return cls(name=str(record.get("name") or record.get("model") or ""),
                   size=int(size) if isinstance(size, (int, float)) else 0,
                   digest=str(record.get("digest") or ""),
                   modified_at=str(record.get("modified_at") or ""),
                   details=dict(record.get("details") or {}),
                   expires_at=str(record.get("expires_at") or ""),
                   context_length=int(window) if isinstance(window, (int, float)) else None)


@dataclass(frozen=True)
class PullProgress:
    """One progress record of ``/api/pull``: a status line, and bytes done of a layer."""

    status: str
    digest: str = ""
    total: int | None = None
    completed: int | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PullProgress:
        """Build from one streamed record."""
        total, completed = record.get("total"), record.get("completed")
        return cls(str(record.get("status") or ""), str(record.get("digest") or ""),
                   int(total) if isinstance(total, (int, float)) else None,
                   int(completed) if isinstance(completed, (int, float)) else None)

    @property
    def percent(self) -> int | None:
        """Share of the layer downloaded, 0..100; None when the record does not say.

        >>> PullProgress("pulling ab", total=1000, completed=500).percent
        50
        """
        if not self.total or self.completed is None:
            return None
        return self.completed * 100 // self.total


@dataclass(frozen=True)
class ModelInfo:
    """What ``/api/show`` says about a model."""

    name: str
    details: Mapping[str, Any] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    model_info: Mapping[str, Any] = field(default_factory=dict)
    #: The chat template (Go template text), empty when the server gives none.
    template: str = ""

    @classmethod
    def from_record(cls, name: str, record: Mapping[str, Any]) -> ModelInfo:
        """Build from an ``/api/show`` reply (fields missing on old servers default to empty)."""
        template = record.get("template")
        return cls(name, dict(record.get("details") or {}),
                   tuple(record.get("capabilities") or ()), dict(record.get("model_info") or {}),
                   template if isinstance(template, str) else "")

    @property
    def embedding_length(self) -> int | None:
        """Vector size (``<arch>.embedding_length``), None if the server does not say."""
        return self._arch_int("embedding_length")

    @property
    def context_length(self) -> int | None:
        """Trained context window (``<arch>.context_length``), None if the server does not say."""
        return self._arch_int("context_length")

    def _arch_int(self, key: str) -> int | None:
        # Keys are namespaced by architecture: bert.embedding_length, llama.context_length, ...
        arch = self.model_info.get("general.architecture")
        value = self.model_info.get(f"{arch}.{key}") if arch else None
        return int(value) if isinstance(value, (int, float)) else None

"""Every error ragkit raises on purpose, in one tree.

::

    RagkitError
    ├── BackendError                 talking to a model backend failed
    │   ├── ConnectError             no server answers at the host
    │   ├── RequestTimeoutError      the server took longer than the timeout
    │   ├── ModelNotFoundError       the backend does not have the model
    │   ├── ResponseError            the server answered with an error status
    │   │   ├── BadRequestError      4xx other than 404 (bad options, capability, ...)
    │   │   └── ServerError          5xx (runner crash, server busy, ...)
    │   ├── StreamError              an {"error": ...} line in the middle of a stream
    │   ├── EmptyAnswerError         the model's answer held no text
    │   ├── ProtocolError            a reply that is not what the protocol promises
    │   └── VectorError              embeddings that cannot be indexed (NaN, zeros, wrong size)
    ├── IndexError_                  something is wrong with an index
    │   ├── IndexNotFoundError       no index with that name or path
    │   ├── IndexCorruptError        an index file cannot be read
    │   ├── IndexBusyError           another process is writing the index
    │   ├── IndexVersionError        the index was made by a newer ragkit
    │   ├── IndexFolderError         the folder cannot be used or written as an index
    │   └── EmbeddingMismatchError   querying with a different embedding model/dimension
    ├── NothingIndexedError          an ingest found nothing it could index
    ├── LoadError                    a document could not be read (reported, not fatal)
    └── UsageError                   bad input from the caller (empty question, k <= 0, ...)
        └── PromptTooLongError       this question and its best passage exceed num_ctx

Every message says what happened and what to do about it; the CLI prints
``str(error)`` as its one-line message.
"""

from __future__ import annotations

import os

__all__ = [
    "BackendError",
    "BadRequestError",
    "ConnectError",
    "EmbeddingMismatchError",
    "EmptyAnswerError",
    "IndexBusyError",
    "IndexCorruptError",
    "IndexError_",
    "IndexFolderError",
    "IndexNotFoundError",
    "IndexVersionError",
    "LoadError",
    "ModelNotFoundError",
    "NothingIndexedError",
    "PromptTooLongError",
    "ProtocolError",
    "RagkitError",
    "RequestTimeoutError",
    "ResponseError",
    "ServerError",
    "StreamError",
    "UsageError",
    "VectorError",
]


class RagkitError(Exception):
    """Root of every error ragkit raises deliberately."""

    #: Process exit status the CLI uses for this kind of error.
    exit_code = 1


class BackendError(RagkitError):
    """Talking to the embedding/generation backend failed."""

    exit_code = 3


class ConnectError(BackendError):
    """No server answers at the configured host."""

    def __init__(self, host: str, detail: str = "") -> None:
        self.host = host
        self.detail = detail
        super().__init__(f"cannot reach Ollama at {host} — is `ollama serve` running?")


class RequestTimeoutError(BackendError):
    """The server did not answer within the timeout."""

    def __init__(self, host: str, timeout: float, what: str | None = None) -> None:
        self.host = host
        self.timeout = timeout
        what = what or f"did not answer within {timeout:g} s — the model may still be loading"
        super().__init__(
            f"Ollama at {host} {what}; retry, or raise the limit with --timeout / RAGKIT_TIMEOUT")


class ModelNotFoundError(BackendError):
    """The backend does not have the requested model."""

    def __init__(self, model: str, hint: str | None = None) -> None:
        self.model = model
        super().__init__(hint or f"model '{model}' not found — run `ollama pull {model}`")


class ResponseError(BackendError):
    """The server answered with an error status; ``error`` is its own text."""

    def __init__(self, status_code: int, error: str) -> None:
        self.status_code = status_code
        self.error = error
        super().__init__(f"Ollama returned HTTP {status_code}: {error} — {self.advice()}")

    def advice(self) -> str:
        """What to do about it."""
        return "check the model name and the options given with -o"


class BadRequestError(ResponseError):
    """A 4xx answer other than 404: the request itself was refused."""


class ServerError(ResponseError):
    """A 5xx answer: the server or its model runner failed (503 = busy, retry later)."""

    def advice(self) -> str:
        """Busy: wait; anything else: the server's log knows why the runner failed."""
        if self.status_code == 503:
            return ("the server's queue is full; retry in a moment, or raise "
                    "OLLAMA_MAX_QUEUE / OLLAMA_NUM_PARALLEL")
        return ("see the `ollama serve` log; a model runner that stops often lacks memory "
                "(try a smaller model or -o num_ctx=2048)")


class StreamError(BackendError):
    """The server reported an error in the middle of a streamed reply."""

    def __init__(self, error: str) -> None:
        self.error = error
        super().__init__(f"Ollama stopped mid-reply with an error: {error} — see the "
                         "`ollama serve` log, then retry")


class EmptyAnswerError(BackendError):
    """The model finished without writing anything (after ragkit removed placeholders)."""

    def __init__(self, model: str, done_reason: str | None) -> None:
        self.model = model
        why = f" (done_reason: {done_reason})" if done_reason else ""
        super().__init__(f"model '{model}' returned an empty answer{why} — ask again, or "
                         "answer with excerpts from the documents: --answer extractive")


class ProtocolError(BackendError):
    """The reply was not what the Ollama protocol promises (JSON, same server, sane size)."""


class VectorError(BackendError):
    """Embeddings that cannot be indexed: NaN, not numbers, all zeros, or of the wrong size.

    ``rerun_helps`` is False when running the same command again must fail the
    same way (the model now gives vectors of another size than the index holds).
    """

    def __init__(self, message: str, *, rerun_helps: bool = True) -> None:
        super().__init__(message)
        self.rerun_helps = rerun_helps


class IndexError_(RagkitError):
    """Something is wrong with an index."""

    exit_code = 4


class IndexNotFoundError(IndexError_):
    """No index exists under that name or path."""

    def __init__(self, name: str, where: str, why: str = "", elsewhere: str = "") -> None:
        self.name = name
        searched = f"{where} ({why})" if why else where
        if elsewhere:  # the index exists under another home: say how to reach it
            fix = (f"there is one at {elsewhere}: pass --index {elsewhere}, or set "
                   f"RAGKIT_HOME={os.path.dirname(elsewhere)}")
        elif os.sep in name or name.startswith("."):  # given as a path, not a name
            fix = f"check the path, or build it with `ragkit ingest PATH --index {name}`"
        else:
            fix = (f"if it is elsewhere, pass --index PATH/TO/{name} or set RAGKIT_HOME to "
                   f"the folder holding it; else build it with `ragkit ingest PATH --index {name}`")
        super().__init__(f"no index '{name}' in {searched} — {fix}")


class IndexCorruptError(IndexError_):
    """An index file exists but cannot be read."""

    def __init__(self, path: str, detail: str, name: str = "") -> None:
        self.path = path
        self.detail = detail
        flag = f" --index {name}" if name else ""
        super().__init__(
            f"index file {path} is unreadable ({detail}) — rebuild it with "
            f"`ragkit ingest PATH{flag} --rebuild`"
        )


class IndexBusyError(IndexError_):
    """Another process holds the index's write lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"index {path} is being written by another ragkit process — wait for it to finish"
        )


class IndexVersionError(IndexError_):
    """The index was written by a newer ragkit, in a format this one cannot read."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        super().__init__(f"index {path} was made by a newer ragkit ({detail}) — upgrade "
                         "ragkit to use it")


class IndexFolderError(IndexError_):
    """The index folder cannot be used: a file, a folder of other things, or not writable."""

    def __init__(self, path: str, problem: str, advice: str) -> None:
        self.path = path
        super().__init__(f"{problem} — {advice}")


class EmbeddingMismatchError(IndexError_):
    """The index was built with another embedding model or dimension."""


class NothingIndexedError(RagkitError):
    """An ingest ended with no file in the index: nothing is created, an old index is kept.

    ``report`` is the run's :class:`~.ingest.reports.IngestReport` (what was skipped and why).
    """

    exit_code = 7

    def __init__(self, message: str, report: object) -> None:
        self.report = report
        super().__init__(message)


class LoadError(RagkitError):
    """A document could not be read; ingest reports it and goes on."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class UsageError(RagkitError):
    """The caller passed something ragkit cannot work with."""

    exit_code = 2


class PromptTooLongError(UsageError):
    """The rules, the question and even the best passage alone do not fit in num_ctx."""

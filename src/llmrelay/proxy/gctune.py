"""The gateway process's garbage-collector settings, applied once its start-up is done (issue 18).

CPython's cyclic collector stops the event loop while it runs, and every open stream waits.
Measured in a gateway holding 256 paced streams (``bench/bench_proxy.py --paced``, main-thread
CPU time of each collection, timed with ``gc.callbacks``): a full (generation-2) collection
took 22–65 ms and came every ~10 young collections, i.e. every few seconds under load — enough
to set the added time-to-first-token p99 by itself. It walks every tracked object: ~32,000
(bare) to ~46,000 (governed) of them were there from start-up (modules, classes, functions,
config, router, key cache) and never become garbage.

So ``llmrelay proxy`` (each ``--workers`` process), after its start-up and before it serves:

* collects once, then :func:`gc.freeze` — what is alive then moves to the permanent generation
  and is never walked again (reference counting still frees it if it is ever dropped);
* collects generation 2 at most every :data:`FULL_EVERY` generation-1 collections (Python's
  default: 10). What is left for a full collection is cyclic garbage that outlived two young
  collections: the gateway's requests make none (a served request is freed by reference
  counting, ``tests/unit/test_direct_respond.py``), so a rarer full collection holds little
  memory. Young collections (generations 0 and 1) are unchanged.

Only the gateway's command does this: the library and an app that embeds :class:`ProxyApp`
keep Python's defaults.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["FULL_EVERY", "settle"]

log = logging.getLogger("llmrelay.proxy")

#: Generation-1 collections between two full ones (CPython's default threshold is 10).
FULL_EVERY = 100


def settle() -> None:
    """Collect once, freeze what start-up left alive, and make full collections rarer."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
    log.debug("gc: %d start-up objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())

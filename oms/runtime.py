"""What a long-running OMS process does once it has loaded: keep the garbage collector off
what it loaded.

A web process holds about 200,000 objects once Django, DRF, Channels, the URLconf and the
apps are imported. CPython's oldest-generation collection walks every one of them, and runs
every so often as requests allocate: on the 2-CPU benchmark machine each took 84 ms in a fresh
process and up to 230 ms in a larger one, and every order list or audit page whose request
met one took 130-230 ms longer (the scale benchmark's p99 was those requests, nothing else).
None of those objects ever becomes garbage; gc.freeze() moves them to a permanent generation
the collector skips, so a full collection walks only what requests made since.
"""

from __future__ import annotations

import gc


def loaded_objects_freeze() -> int:
    """Collect what loading left behind, then freeze every object alive: the collector never
    walks them again. Call once, after everything long-lived is loaded. Returns how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

"""The recent history of this process's pools, for the page's chart (sampled by the heartbeat thread)."""

from __future__ import annotations

import threading
from collections import deque

from django_mongopool.client import pools
from django_mongopool.guards import forks

SAMPLE_SECONDS = 2.0
HISTORY_SAMPLES = 150  # five minutes at one sample every two seconds

_lock = threading.Lock()
_samples: deque[tuple[float, int, int, int]] = deque(maxlen=HISTORY_SAMPLES)


def sample() -> None:
    """Record (time, open, in use, waiting) summed over this process's pools."""
    snap = pools.snapshot()
    with _lock:
        _samples.append((round(snap.taken_at, 3), snap.open, snap.in_use, snap.waiting))


def samples() -> list[dict[str, float]]:
    with _lock:
        items = list(_samples)
    return [{"t": t, "open": o, "in_use": u, "waiting": w} for t, o, u, w in items]


@forks.in_child
def forget_after_fork() -> None:
    """In a forked child: the parent's samples are not this process's history."""
    global _lock
    _lock = threading.Lock()
    _samples.clear()

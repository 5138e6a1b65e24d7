"""A forked child never inherits a held lock or the parent's in-flight state (no server needed)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future

import pytest

from django_mongopool.audit import readiness, report
from django_mongopool.client import event_loops
from django_mongopool.fleet import heartbeat, history, shares
from django_mongopool.guards import stray

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _locks() -> list[threading.Lock]:
    return [
        shares._lock,
        heartbeat._lock,
        report._cache_lock,
        readiness._lock,
        history._lock,
        event_loops._lock,
        stray._lock,
    ]


def test_child_gets_fresh_locks_and_no_parent_ping(recwarn):
    held = threading.Event()
    release = threading.Event()

    def hold_every_lock() -> None:
        for lock in _locks():
            lock.acquire()
        held.set()
        release.wait(30)
        for lock in reversed(_locks()):
            lock.release()

    holder = threading.Thread(target=hold_every_lock)
    holder.start()
    assert held.wait(10)
    readiness._in_flight = Future()  # a ping the parent is waiting for
    try:
        pid = os.fork()
        if pid == 0:  # the child: every lock free, no inherited ping
            code = 0
            try:
                for lock in _locks():
                    if not lock.acquire(timeout=2):
                        code = 1
                    else:
                        lock.release()
                if readiness._in_flight is not None:
                    code = 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the child hung"
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        readiness._in_flight = None
        release.set()
        holder.join(30)

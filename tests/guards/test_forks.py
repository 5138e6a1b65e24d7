"""A forked child never inherits a held lock or the parent's in-flight state (no server needed)."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import pkgutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from django_mongopool.audit import readiness
from django_mongopool.client import process
from tests.helpers import bound_child, wait_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _holders(module: object) -> Iterator[tuple[str, str | None, object]]:
    """(name, attribute, value) for what the module holds: its globals, and one level into the
    objects and functions of the package it holds (``conf._lock``, a logger's ``.lock``). A
    thread's own objects are left out: their locks are ``threading``'s (``_tstate_lock`` is held
    for the thread's life), and the thread does not exist in a forked child."""
    for name, value in list(vars(module).items()):
        yield name, None, value
        if isinstance(value, threading.Thread):
            continue
        if getattr(type(value), "__module__", "").startswith("django_mongopool") or (
            inspect.isfunction(value) and value.__module__.startswith("django_mongopool")
        ):
            for attribute, inner in list(getattr(value, "__dict__", {}).items()):
                yield name, attribute, inner


@functools.cache
def _lock_names() -> list[tuple[object, str, str | None]]:
    """Every lock the package keeps for the life of the process, found by importing every module
    (a lock added later is covered without being listed here)."""
    import django_mongopool

    found: list[tuple[object, str, str | None]] = []
    seen: set[int] = set()
    for info in pkgutil.walk_packages(django_mongopool.__path__, "django_mongopool."):
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as exc:  # an optional dependency this run lacks
            if (exc.name or "").startswith("django_mongopool"):
                raise
            continue
        for name, attribute, value in _holders(module):
            # A lock imported by name (process.pin_lock in the middleware) counts once.
            if isinstance(value, LOCK_TYPES) and id(value) not in seen:
                seen.add(id(value))
                found.append((module, name, attribute))
    return found


def _locks() -> list[threading.Lock]:
    """The locks as they are now (a reset in the child replaces them). An object found by the
    scan that a module has since replaced (a heartbeat publisher stopped, say) no longer counts."""
    found = []
    for module, name, attribute in _lock_names():
        holder = getattr(module, name, None)
        lock = getattr(holder, attribute, None) if attribute else holder
        if isinstance(lock, LOCK_TYPES):
            found.append(lock)
    return found


def test_the_package_keeps_module_level_locks():
    """The scan finds them (if it found none, the fork test below would prove nothing)."""
    from django_mongopool import mongoengine
    from django_mongopool.conf import conf

    found = {id(lock) for lock in _locks()}
    for lock in (process.pin_lock, process._process.lock, mongoengine._lock, conf._lock):
        assert id(lock) in found
    assert len(found) >= 16


def test_child_gets_fresh_locks_and_no_parent_ping(recwarn):
    held = threading.Event()
    release = threading.Event()

    def hold_every_lock() -> None:
        # All or none: the app's own threads (the heartbeat's) take some of these locks in
        # another order, so a lock that is busy gives back every one taken and starts again
        # (waiting on it while holding the others could deadlock with that thread).
        acquired: list[threading.Lock] = []
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                for lock in _locks():
                    if not lock.acquire(timeout=0.05):
                        break
                    acquired.append(lock)
                else:
                    held.set()
                    release.wait(30)
                    return
                while acquired:
                    acquired.pop().release()
        finally:  # the very locks it took: a lock left held would hang the rest of the run
            while acquired:
                acquired.pop().release()

    holder = threading.Thread(target=hold_every_lock)
    holder.start()
    assert held.wait(30)
    readiness._in_flight = Future()  # a ping the parent is waiting for
    try:
        pid = os.fork()
        if pid == 0:  # the child: every lock free, no inherited ping
            code = 0
            try:
                bound_child()
                for lock in _locks():
                    if not lock.acquire(timeout=2):
                        code = 1
                    else:
                        lock.release()
                if readiness._in_flight is not None:
                    code = 2
            finally:
                os._exit(code)
        assert wait_child(pid) == 0
    finally:
        readiness._in_flight = None
        release.set()
        holder.join(30)


def _in_child(check) -> int:
    """Run ``check()`` in a forked child; its exit code (0: passed)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            bound_child()
            code = 0 if check() else 2
        finally:
            os._exit(code)
    return wait_child(pid)


def test_a_request_scope_the_child_inherits_gets_the_childs_client(offline):
    """The parent's pinned client is set aside by the fork hook (no pid is compared): a request
    scope copied into the child pins the child's own client."""
    from django_mongopool.client.scope import RequestScope, current

    request = RequestScope()
    token = current.set(request)
    try:
        parents = process.get_client()
        assert request.sync is parents

        def child() -> bool:
            mine = process.get_client()
            return mine is not parents and request.sync is mine and not mine._mongopool_closed

        assert _in_child(child) == 0
        assert process.get_client() is parents and not parents._mongopool_closed
    finally:
        current.reset(token)
        request.held.release()


def test_every_reset_runs_even_when_one_fails(monkeypatch):
    from django_mongopool.guards import forks

    ran = []

    def failing() -> None:
        ran.append("failing")
        raise RuntimeError("reset failed")

    monkeypatch.setattr(forks, "_in_child", [])
    forks.in_child(failing)
    forks.in_child(lambda: ran.append("next"))
    with pytest.raises(RuntimeError, match="reset failed"):
        forks.run_in_child()
    assert ran == ["failing", "next"]


def test_the_app_installs_one_hook_that_runs_the_registry(monkeypatch):
    """A module that registers a reset has it run in every forked child."""
    from django_mongopool.guards import forks

    marker = []
    monkeypatch.setattr(forks, "_in_child", [*forks._in_child, lambda: marker.append(os.getpid())])
    assert _in_child(lambda: marker == [os.getpid()]) == 0
    assert marker == []  # not in the parent

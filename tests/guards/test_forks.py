"""A forked child never inherits a held lock or the parent's in-flight state (no server needed)."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import pkgutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from types import ModuleType

import pytest

from django_mongopool.audit import readiness
from django_mongopool.client import process
from tests.helpers import bound_child, wait_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _holders(module: ModuleType) -> Iterator[tuple[str, str | None, object]]:
    """(name, attribute, value) for what the module holds: its globals, and one level into the
    objects and functions of the package it holds (``conf._lock``, a logger's ``.lock``). A
    thread's own objects are left out, whatever the thread's class: ``threading``'s locks
    (``_tstate_lock`` is held for the thread's life) and those of a thread class of the package
    too (``heartbeat.Publisher``'s ``_beat_lock``). The thread does not exist in a forked child,
    and the module drops its object there (heartbeat's reset sets ``_publisher`` to None; the
    child starts a publisher of its own, with fresh locks, when it needs one)."""
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
def _lock_names() -> list[tuple[ModuleType, str, str | None]]:
    """Every lock the package keeps for the life of the process, found by importing every module
    (a lock added later is covered without being listed here), under every name it has: a lock
    imported by name (process.pin_lock in the middleware) is found in both modules. One object
    here, but a reset in a forked child that replaced the lock instead of releasing it would
    leave the importer's copy held: both names are looked at in the child (see :func:`_locks`)."""
    import django_mongopool

    found: list[tuple[ModuleType, str, str | None]] = []
    for info in pkgutil.walk_packages(django_mongopool.__path__, "django_mongopool."):
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as exc:  # an optional dependency this run lacks
            if (exc.name or "").startswith("django_mongopool"):
                raise
            continue
        for name, attribute, value in _holders(module):
            if isinstance(value, LOCK_TYPES):
                found.append((module, name, attribute))
    return found


def _named_locks() -> list[tuple[threading.Lock, list[str]]]:
    """The locks as they are now (a reset in the child replaces them), each once, with the names
    it has. Told apart by identity now, not at the scan: in the parent a lock imported by name
    is one object, taken once; in a forked child a copy left behind by a reset that replaced
    the module's lock is another object, and is looked at too. An object found by the scan that
    a module has since replaced (a heartbeat publisher stopped, say) no longer counts."""
    found: dict[int, tuple[threading.Lock, list[str]]] = {}
    for module, name, attribute in _lock_names():
        holder = getattr(module, name, None)
        lock = getattr(holder, attribute, None) if attribute else holder
        if isinstance(lock, LOCK_TYPES):
            where = f"{module.__name__}.{name}" + (f".{attribute}" if attribute else "")
            found.setdefault(id(lock), (lock, []))[1].append(where)
    return list(found.values())


def _locks() -> list[threading.Lock]:
    """The locks as they are now, each once (see :func:`_named_locks`)."""
    return [lock for lock, _ in _named_locks()]


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

    def inherited() -> Iterator[str]:  # in the child: every lock free, no inherited ping
        for lock, names in _named_locks():
            if not lock.acquire(timeout=2):
                yield f"lock still held: {' = '.join(names)}"
            else:
                lock.release()
        if readiness._in_flight is not None:
            yield "the parent's in-flight readiness ping"

    holder = threading.Thread(target=hold_every_lock)
    try:  # from the start: the locks are freed (release) whatever fails below
        holder.start()
        assert held.wait(30), "the holder never had every lock at once"
        readiness._in_flight = Future()  # a ping the parent is waiting for
        assert _problems_in_child(inherited) == []
    finally:
        readiness._in_flight = None
        release.set()
        holder.join(30)


def _problems_in_child(find: Callable[[], Iterator[str]]) -> list[str]:
    """Run ``find()`` in a forked child: the problems it yields, each sent up a pipe as soon as
    found (a child killed part way has told what it had found), and how the child failed if it
    did."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            bound_child()
            os.close(read_fd)
            for problem in find():
                os.write(write_fd, f"{problem}\n".encode())
            code = 0
        except BaseException as exc:
            os.write(write_fd, f"the check raised {exc!r}\n".encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as reader:  # end-of-file: the child has ended (bound_child)
        problems = reader.read().splitlines()
    try:
        code = wait_child(pid)
    except pytest.fail.Exception as exc:  # it hung: say what it had found by then
        pytest.fail(f"{exc.msg}; it had found: {problems}")
    return problems + ([f"the child exited with {code}"] if code else [])


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

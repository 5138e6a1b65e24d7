"""After a fork: what each module forgets in the child, kept in one registry.

A preforking server (gunicorn ``--preload``, uWSGI without lazy-apps, ``multiprocessing``)
forks a process that may already hold the app's state: a client with open sockets, a lock
another thread held at that instant, a measurement in flight. Each module that keeps such
state registers the function that resets it, where the state is defined
(``@forks.in_child``); ``AppConfig.ready()`` hands the registry to ``os.register_at_fork``
once (:func:`run_before` in the parent, :func:`run_in_child` in every child). Nothing else
compares process ids to notice a fork.

A reset runs in the child before any other thread of it exists: it never takes a lock (one
held at fork time is never released there), it replaces it.
"""

from __future__ import annotations

from collections.abc import Callable

Hook = Callable[[], None]

_before: list[Hook] = []
_in_child: list[Hook] = []


def before(hook: Hook) -> Hook:
    """Register ``hook`` to run in the parent just before each fork (a decorator)."""
    _before.append(hook)
    return hook


def in_child(hook: Hook) -> Hook:
    """Register ``hook`` to run in each forked child, first thing (a decorator)."""
    _in_child.append(hook)
    return hook


def _run(hooks: list[Hook]) -> None:
    """Every hook, even when one fails; the first failure is raised once all have run (Python
    reports it: an exception cannot stop a fork)."""
    failure: BaseException | None = None
    for hook in list(hooks):
        try:
            hook()
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


def run_before() -> None:
    _run(_before)


def run_in_child() -> None:
    _run(_in_child)

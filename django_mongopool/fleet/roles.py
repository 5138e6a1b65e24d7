"""What this process is in the fleet: a web process, a task worker, or a long command.

Each heartbeat carries its process's role, so the page, its JSON and ``mongo_connections``
can tell the fleet's processes apart. A process is a web process unless something says
otherwise: the Celery integration (``worker_init``) and the Django tasks integration
(a task run by a worker process) make it a worker, :func:`django_mongopool.tasks.fleet.join_fleet`
a command. A forked child keeps its parent's role (a Celery prefork child is a worker).
"""

from __future__ import annotations

from typing import Literal

Role = Literal["web", "worker", "command"]
WEB: Role = "web"
WORKER: Role = "worker"
COMMAND: Role = "command"
ROLES: tuple[Role, ...] = (WEB, WORKER, COMMAND)

_role: Role | None = None


def current() -> Role:
    """This process's role (``"web"`` until something sets another)."""
    return _role or WEB


def is_set() -> bool:
    """True once something gave this process a role (web processes never need to)."""
    return _role is not None


def set_role(role: str | None) -> None:
    """Make this process a ``"web"``, ``"worker"`` or ``"command"`` process (None: the default)."""
    global _role
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(map(repr, ROLES))}, not {role!r}.")
    _role = role

"""Shared test helpers: count sockets at the operating system, read metrics, read JSON strictly,
bound forked children, wait for a server process to answer."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote_plus

import django
import psutil
import pytest
from pymongo import monitoring

# ADMINS for the error e-mail tests: Django 6.0+ takes addresses and deprecates (name, address)
# pairs (an error under Django 6.1, which warns); Django 5.2 takes only the pairs.
ADMINS = ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]

# pymongo keeps up to two monitor connections per server (monitor + RTT monitor).
MONITORS_PER_SERVER = 2


def established_to(ports: set[int], pid: int | None = None) -> int:
    """Established TCP connections from process ``pid`` to any of ``ports``."""
    process = psutil.Process(pid or os.getpid())
    return sum(
        1
        for conn in process.net_connections(kind="tcp")
        if conn.status == psutil.CONN_ESTABLISHED and conn.raddr and conn.raddr.port in ports
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ROOT = Path(__file__).resolve().parents[1]
MANAGE = ROOT / "example_project" / "manage.py"


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the example project's manage.py in a clean environment plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MONGODB_")}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


class HoldConnection(monitoring.CommandListener):
    """Blocks the command tagged comment="hold" so its pooled connection stays checked out."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get("comment") == "hold":
            self.holding.set()
            self.release.wait(60)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def with_password(url: str, password: str) -> str:
    """``url`` with its password replaced (the userinfo cannot hold an unencoded ``@``)."""
    scheme, rest = url.split("://", 1)
    userinfo, _, tail = rest.partition("@")
    username = userinfo.split(":", 1)[0]
    return f"{scheme}://{username}:{quote_plus(password)}@{tail}"


def strict_json(text: str) -> Any:
    """``text`` parsed as JSON proper: ``NaN`` and ``Infinity`` (which Python writes, but no
    other JSON reader takes) are an error."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# A forked child's life, at most: its own alarm ends it, and the parent stops waiting for it.
CHILD_SECONDS = 60


def bound_child(seconds: int = CHILD_SECONDS) -> None:
    """The first thing a forked child does: SIGALRM's default action kills it after ``seconds``,
    so a hung child ends by itself, and a parent blocked reading its pipe sees end-of-file."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not a handler the parent may have set
    signal.alarm(seconds)


def wait_children(pids: list[int], timeout: float = CHILD_SECONDS) -> list[int]:
    """The forked children's exit codes (a signal's: negative), every child reaped. Children
    still running after ``timeout`` seconds are killed and fail the test, and so does a child
    its own alarm killed (:func:`bound_child`): either hung, and a hung child must not hang the
    run."""
    deadline = time.monotonic() + timeout
    codes: dict[int, int] = {}
    while True:
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        if len(codes) == len(pids):
            break
        if time.monotonic() > deadline:
            hung = [pid for pid in pids if pid not in codes]
            for pid in hung:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            pytest.fail(f"forked child(ren) {hung} still running after {timeout:g} s: killed")
        time.sleep(0.05)
    alarmed = [pid for pid in pids if codes[pid] == -signal.SIGALRM]
    if alarmed:
        pytest.fail(f"forked child(ren) {alarmed} hung: ended by their own alarm (bound_child)")
    return [codes[pid] for pid in pids]


def wait_child(pid: int, timeout: float = CHILD_SECONDS) -> int:
    """The forked child's exit code; see :func:`wait_children`."""
    (code,) = wait_children([pid], timeout)
    return code


class _Finished(Protocol):
    def cancelled(self) -> bool: ...
    def exception(self) -> BaseException | None: ...
    def result(self) -> Any: ...


def outcome(future: _Finished) -> str:
    """What a finished future gave (``concurrent.futures`` or ``asyncio``), for a failure's
    message."""
    if future.cancelled():
        return "was cancelled"
    error = future.exception()
    return f"raised {error!r}" if error is not None else f"returned {future.result()!r}"


def wait_until_answering(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    any_status: bool = False,
    seconds: float = 60,
    answer_timeout: float = 5,
) -> None:
    """Wait for the server ``process`` (its output in ``log``) to answer ``url``: with a 200, or
    with ``any_status`` any HTTP status (a 503 while the database is away is an answer). A
    deadline, not a number of tries (each try may wait ``answer_timeout``): a process that
    exits, or does not answer within ``seconds``, raises RuntimeError with its log; the caller
    stops it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=answer_timeout)
            return
        except urllib.error.HTTPError:
            if any_status:
                return
            error: OSError = OSError("not ready")
        except OSError as exc:  # not listening yet
            error = exc
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the server did not answer {url} within {seconds:g} s ({error!r}); its log:\n"
                f"{log.read_text()}"
            )
        time.sleep(0.05)

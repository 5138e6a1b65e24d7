"""Real worker processes for the worker tests: a Celery worker, Django tasks' db_worker.

Both run with ``tests.tasks.worker_settings`` (the environment names the servers, the database and
the budget) and log to a file under the test's tmp_path. A sampler counts, at the operating
system, the established connections of a set of processes to the data server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from django_mongopool.testing.ferretdb import FerretDB
from tests.helpers import ROOT, established_to


def worker_environment(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MONGOPOOL_", "CELERY_", "DJANGO_"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
        DJANGO_SETTINGS_MODULE="tests.tasks.worker_settings",
        **values,
    )
    return env


def wait_for(
    predicate: Callable[[], object],
    what: str,
    timeout: float = 60.0,
    detail: Callable[[], object] | None = None,
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    seen = f" ({detail()})" if detail is not None else ""
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{seen}")


class Process:
    """One command in its own process, its output in ``log``."""

    def __init__(
        self, command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
    ) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 30, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)


def celery_worker(env: dict[str, str], log: Path, concurrency: int) -> Process:
    """``celery worker`` with the prefork pool, started and ready to consume."""
    worker = Process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.tasks.worker_celery",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env,
        log,
    )
    wait_for(lambda: " ready." in worker.output() or not worker.alive(), "the worker to start")
    assert worker.alive(), worker.output()[-4000:]
    return worker


@contextlib.contextmanager
def scratch(tmp_path: Path, name: str) -> Iterator[Path]:
    """A directory for data the test throws away: in memory (tmpfs) when the machine has one."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path / name
        return
    base = Path(tempfile.mkdtemp(prefix=f"mongopool-{name}-", dir=shm))
    try:
        yield base / name
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def throwaway_ferretdb(tmp_path: Path, name: str) -> Iterator[FerretDB]:
    """A FerretDB of its own whose data is thrown away."""
    with scratch(tmp_path, name) as directory:
        server = FerretDB(data_dir=directory).start()
        try:
            yield server
        finally:
            server.kill()  # nothing in it is kept: no graceful shutdown to wait for
            server.cleanup()


def children(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


class ConnectionSampler(threading.Thread):
    """Every 50 ms: the established connections of ``pids()`` to ``ports``, summed."""

    def __init__(self, ports: set[int], pids: Callable[[], list[int]]) -> None:
        super().__init__(daemon=True)
        self.ports, self.pids = ports, pids
        self.samples: list[int] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            total = 0
            for pid in self.pids():
                try:
                    total += established_to(self.ports, pid)
                except psutil.Error:  # a process that just exited
                    continue
            self.samples.append(total)
            self.stop_event.wait(0.05)

    def finish(self) -> list[int]:
        self.stop_event.set()
        self.join(10)
        return self.samples


def beats_by_pid(db) -> dict[int, dict]:
    return {beat["pid"]: beat for beat in db["mongopool_heartbeats"].find()}


def runs_by_pid(db) -> dict[int, int]:
    counts: dict[int, int] = {}
    for run in db["runs"].find({}, {"pid": 1}):
        counts[run["pid"]] = counts.get(run["pid"], 0) + 1
    return counts

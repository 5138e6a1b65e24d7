"""The MongoDB-compatible server a benchmark runs against, and the machine it runs on.

Two server modes:

- ``plain``: FerretDB on loopback, no TLS, no authentication (``MONGOPOOL_TEST_URL`` names
  another server instead).
- ``tls_scram``: FerretDB on TLS only with a throw-away CA and SCRAM-SHA-256 credentials, the
  way production connects (``MONGOPOOL_TEST_SECURE_URL`` names another server instead).

FerretDB keeps its SQLite files on tmpfs (/dev/shm) when there is one.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil

MODES = ("plain", "tls_scram")
URL_VARIABLES = {"plain": "MONGOPOOL_TEST_URL", "tls_scram": "MONGOPOOL_TEST_SECURE_URL"}
MODE_NAMES = {"plain": "no TLS, no authentication", "tls_scram": "TLS + SCRAM-SHA-256"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """Our own FerretDB in the given mode, or the server named by the mode's URL variable."""

    def __init__(self, mode: str = "plain") -> None:
        if mode not in MODES:
            raise ValueError(f"server mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.url = os.environ.get(URL_VARIABLES[mode])
        self.ferretdb: Any = None
        if self.url:
            from pymongo.uri_parser_shared import _validate_uri

            self.ports = {port for _h, port in _validate_uri(self.url)["nodelist"]}
            self.name = f"MongoDB at {URL_VARIABLES[mode]} ({MODE_NAMES[mode]})"
        else:
            self._start_ferretdb()

    def _start_ferretdb(self) -> None:
        from django_mongopool.testing.ferretdb import VERSION, FerretDB

        shm = Path("/dev/shm")
        data_dir = shm / f"mongopool-bench-{uuid.uuid4().hex[:6]}" if shm.is_dir() else None
        secure = self.mode == "tls_scram"
        self.ferretdb = FerretDB(data_dir=data_dir, tls=secure, auth=secure).start()
        self.url, self.ports = self.ferretdb.url, {self.ferretdb.port}
        tmpfs = ", data on tmpfs" if data_dir else ""
        self.name = f"FerretDB {VERSION} (SQLite backend{tmpfs}; {MODE_NAMES[self.mode]})"

    def ferret_counts(self) -> tuple[float, float] | None:
        """FerretDB's accepted and finished client connections (None for other servers)."""
        if self.ferretdb is None:
            return None
        text = urllib.request.urlopen(self.ferretdb.metrics_url, timeout=5).read().decode()
        accepted = sum(
            float(v)
            for v in re.findall(r'^ferretdb_client_accepts_total\{error="0"\} (\S+)', text, re.M)
        )
        finished = sum(
            float(v)
            for v in re.findall(
                r"^ferretdb_client_duration_seconds_count\{[^}]*\} (\S+)", text, re.M
            )
        )
        return accepted, finished

    def cpu_seconds(self) -> float | None:
        """User + system CPU time our FerretDB has used so far (None for other servers)."""
        if self.ferretdb is None:
            return None
        times = psutil.Process(self.ferretdb.pid).cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float | None:
        if self.ferretdb is None:
            return None
        return psutil.Process(self.ferretdb.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        """Stop our FerretDB and remove its data directory and log (they live on tmpfs)."""
        if self.ferretdb is not None:
            self.ferretdb.cleanup()
            shutil.rmtree(self.ferretdb.data_dir, ignore_errors=True)
            self.ferretdb.log_path.unlink(missing_ok=True)


def _cpu_model() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            return next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        return model


# What a benchmark's figures depend on: the package, the harness, the pinned dependencies.
CODE_PATHS = ("django_mongopool", "bench", ":!bench/results", "pyproject.toml")


def commit() -> str:
    """The commit of the code being measured ("... with local changes" when the package, the
    harness or pyproject.toml differ from it; documentation and the results themselves do not
    count)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                *CODE_PATHS,
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with local changes" if changed else "")


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, the versions that matter for the figures, and the commit."""
    import django
    import pymongo

    return {
        "cpu": _cpu_model(),
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "pymongo": pymongo.version,
        "django": django.get_version(),
        "os": platform.platform(),
        "commit": commit(),
    }

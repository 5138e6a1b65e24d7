"""Build and run FerretDB v1.24.2 (SQLite backend), the real test and demo server.

Only the project's scripts and test fixtures use this; the app itself never
starts processes. Building needs the Go toolchain and the Go module proxy;
the binary is cached (``MONGOPOOL_CACHE_DIR``, default ``~/.cache/django-mongopool``)
so only the first build is slow. ``MONGOPOOL_FERRETDB_BIN`` points at a
binary built elsewhere.

    python -m django_mongopool.testing.ferretdb build     # print the binary's path
    python -m django_mongopool.testing.ferretdb serve     # run one on a free port
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VERSION = "v1.24.2"
MODULE = "github.com/FerretDB/FerretDB"
START_TIMEOUT = 60.0

_LISTEN = re.compile(r"Listening on TCP (\S+):(\d+)")
_DEBUG = re.compile(r"Starting debug server on http://(\S+?):(\d+)/debug")


class FerretDBUnavailable(RuntimeError):
    """FerretDB could not be built or started."""


def cache_dir() -> Path:
    explicit = os.environ.get("MONGOPOOL_CACHE_DIR")
    if explicit:
        return Path(explicit).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "django-mongopool"


def binary_path() -> Path:
    explicit = os.environ.get("MONGOPOOL_FERRETDB_BIN")
    if explicit:
        return Path(explicit)
    return cache_dir() / f"ferretdb-{VERSION}" / "ferretdb"


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FerretDBUnavailable(
            f"{' '.join(cmd)} failed with exit code {result.returncode}:\n{result.stderr[-4000:]}"
        )
    return result.stdout


def build(log: bool = True) -> Path:
    """Build FerretDB once into the cache and return the binary's path.

    Recipe (see FERRETDB.md): the module zip lacks build/version/version.txt,
    so a plain ``go install`` builds a binary that panics at start; we copy the
    module, write that file, and build without the PostgreSQL backend.
    """
    binary = binary_path()
    if binary.exists():
        return binary
    if os.environ.get("MONGOPOOL_FERRETDB_BIN"):
        raise FerretDBUnavailable(f"MONGOPOOL_FERRETDB_BIN={binary} does not exist.")
    go = shutil.which("go")
    if go is None:
        raise FerretDBUnavailable(
            "The Go toolchain (go) is not on PATH; it is needed once to build FerretDB "
            f"{VERSION}. Install Go, or set MONGOPOOL_FERRETDB_BIN to a built ferretdb binary, "
            "or set MONGOPOOL_TEST_URL to a running MongoDB."
        )
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if binary.exists():
            return binary
        if log:
            print(
                f"Building FerretDB {VERSION} (first time only, a few minutes)...", file=sys.stderr
            )
        info = json.loads(_run([go, "mod", "download", "-json", f"{MODULE}@{VERSION}"]))
        with tempfile.TemporaryDirectory(prefix="ferretdb-src-") as tmp:
            src = Path(tmp) / "src"
            shutil.copytree(info["Dir"], src)
            for path in src.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            (src / "build" / "version" / "version.txt").write_text(VERSION + "\n")
            partial = binary.with_suffix(".partial")
            _run(
                [
                    go,
                    "build",
                    "-buildvcs=false",
                    "-tags",
                    "ferretdb_no_postgresql",
                    "-o",
                    str(partial),
                    "./cmd/ferretdb",
                ],
                cwd=src,
                env={**os.environ, "GOFLAGS": "-mod=mod"},
            )
            partial.rename(binary)
    return binary


class FerretDB:
    """One FerretDB process on loopback with its own SQLite directory."""

    def __init__(self, port: int = 0, data_dir: str | Path | None = None) -> None:
        self.requested_port = port
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="ferretdb-data-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.debug_port: int | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.debug_port}/debug/metrics"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> FerretDB:
        binary = build()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self.port or self.requested_port
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            self.process = subprocess.Popen(
                [
                    str(binary),
                    "--handler=sqlite",
                    f"--sqlite-url=file:{self.data_dir.resolve()}/",
                    f"--listen-addr=127.0.0.1:{port}",
                    "--state-dir=-",
                    "--telemetry=disable",
                    "--debug-addr=127.0.0.1:0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace")
            listen, debug = _LISTEN.search(text), _DEBUG.search(text)
            if listen and debug:
                self.port, self.debug_port = int(listen.group(2)), int(debug.group(2))
                return self
            if self.process.poll() is not None:
                raise FerretDBUnavailable(
                    f"FerretDB exited with code {self.process.returncode}:\n{text[-4000:]}"
                )
            time.sleep(0.05)
        self.stop()
        raise FerretDBUnavailable(f"FerretDB did not start within {START_TIMEOUT:.0f}s.")

    def _signal(self, sig: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would (the data directory survives)."""
        self._signal(signal.SIGKILL)
        if self.process:
            self.process.wait(timeout=30)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        self.resume()
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                self.log_path.unlink()

    def __enter__(self) -> FerretDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m django_mongopool.testing.ferretdb")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build FerretDB once and print the binary's path")
    serve = sub.add_parser("serve", help="run FerretDB in the foreground until interrupted")
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    serve.add_argument("--data-dir", help="SQLite directory (default: a new temporary one)")
    serve.add_argument("--url-file", help="write the server's mongodb:// URL into this file")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build())
            return 0
        server = FerretDB(port=args.port, data_dir=args.data_dir).start()
    except FerretDBUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.url_file:
        Path(args.url_file).write_text(server.url + "\n")
    print(
        f"FerretDB {VERSION} listening on {server.url} (metrics: {server.metrics_url})", flush=True
    )
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop and server.process and server.process.poll() is None:
            time.sleep(0.2)
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

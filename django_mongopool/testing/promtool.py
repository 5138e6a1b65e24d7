"""Build Prometheus' ``promtool``, which checks and unit-tests the operations kit's alert rules.

Only the project's scripts and tests use this (``scripts/setup`` builds it, the ops kit's
tests run ``promtool check rules`` and ``promtool test rules``); the app itself never runs it.
Building needs the Go toolchain and the Go module proxy (``go install`` with the tag
``remove_all_sd``, about 5 minutes (3.7 min of CPU) on two cores, run with ``nice``, where the
full build took 16); the binary is cached beside FerretDB
(``MONGOPOOL_CACHE_DIR``, default ``~/.cache/django-mongopool``), so only the first build is
slow. ``MONGOPOOL_PROMTOOL_BIN`` points at a promtool built elsewhere.

    python -m django_mongopool.testing.promtool build     # print the binary's path
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django_mongopool.testing.ferretdb import cache_dir

VERSION = "v0.316.0"  # the Go module version of github.com/prometheus/prometheus
PACKAGE = "github.com/prometheus/prometheus/cmd/promtool"


class PromtoolUnavailable(RuntimeError):
    """promtool could not be built."""


def binary_path() -> Path:
    explicit = os.environ.get("MONGOPOOL_PROMTOOL_BIN")
    if explicit:
        return Path(explicit)
    return cache_dir() / f"promtool-{VERSION}" / "promtool"


def build(log: bool = True) -> Path:
    """Build promtool once into the cache (``go install`` with ``GOBIN``) and return its path."""
    binary = binary_path()
    if binary.exists():
        return binary
    if os.environ.get("MONGOPOOL_PROMTOOL_BIN"):
        raise PromtoolUnavailable(f"MONGOPOOL_PROMTOOL_BIN={binary} does not exist.")
    go = shutil.which("go")
    if go is None:
        raise PromtoolUnavailable(
            "The Go toolchain (go) is not on PATH; it is needed once to build promtool "
            f"{VERSION}. Install Go, or set MONGOPOOL_PROMTOOL_BIN to a built promtool binary."
        )
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if binary.exists():
            return binary
        if log:
            print(
                f"Building promtool {VERSION} (first time only, about 5 minutes)...",
                file=sys.stderr,
            )
        nice = shutil.which("nice")
        with tempfile.TemporaryDirectory(prefix="promtool-", dir=binary.parent) as tmp:
            # remove_all_sd: Prometheus' own build tag leaving out the service-discovery plugins
            # (cloud SDKs; nothing rule tests use): a third of the compile time.
            command = [go, "install", "-tags", "remove_all_sd", f"{PACKAGE}@{VERSION}"]
            result = subprocess.run(
                [nice, "-n", "10", *command] if nice else command,
                env={**os.environ, "GOBIN": tmp, "GOFLAGS": "-buildvcs=false"},
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise PromtoolUnavailable(
                    f"{' '.join(command)} failed with exit code {result.returncode}:\n"
                    f"{result.stderr[-4000:]}"
                )
            (Path(tmp) / "promtool").rename(binary)
    return binary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m django_mongopool.testing.promtool")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build promtool once and print the binary's path")
    parser.parse_args(argv)
    try:
        print(build())
    except PromtoolUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

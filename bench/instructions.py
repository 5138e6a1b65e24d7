"""The middleware's cost in machine instructions per request: deterministic, unlike CPU time.

CPU time on a shared 2-core machine varies by a few percent from round to round, which is
the size of the target itself (the middleware within 2 % of none). This harness counts the
instructions the web process executes per request under valgrind's callgrind, which does
not depend on what else the machine is doing. Each arm runs twice in a fresh interpreter,
once with 0 and once with ``--requests`` requests after the same warm-up, so start-up cancels
out: (instructions(N) - instructions(0)) / N.

Arms: ``none`` (no middleware), ``noop`` (a middleware whose ``__call__`` only calls the
next one: what any middleware costs in Django's chain), ``mongopool``
(``MongoSessionMiddleware``). The view never touches MongoDB; no server is needed.

    python bench/instructions.py                      # about 3 minutes on 2 cores
    python bench/instructions.py --requests 200 --out /tmp/x    # quicker

Needs ``valgrind`` (Debian: ``apt install valgrind``). Results: bench/results/instructions.json
and instructions.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ARMS = {
    "none": [],
    "noop": ["benchsite.noop.NoopMiddleware"],
    "mongopool": ["django_mongopool.middleware.MongoSessionMiddleware"],
}
TARGET_PERCENT = 2.0
WARM_UP = 200


def child(arm: str, requests: int) -> None:
    """Runs inside valgrind: warm up, then serve ``requests`` requests to the empty view."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="benchsite.settings",
        BENCH_URL="mongodb://127.0.0.1:9/unused",
        BENCH_DB="unused",
    )
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=ARMS[arm]):
        handler = WSGIHandler()
    environ = RequestFactory().get("/noop").environ

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        return None

    for count in (WARM_UP, requests):
        for _ in range(count):
            response = handler(dict(environ), start_response)
            b"".join(response)
            response.close()


def instructions(arm: str, requests: int, workdir: Path) -> int:
    out = workdir / f"callgrind.{arm}.{requests}"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            arm,
            str(requests),
        ],
        check=True,
        capture_output=True,
    )
    match = re.search(r"^summary: (\d+)", out.read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match.group(1))


def measure(requests: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        jobs = {
            (arm, n): pool.submit(instructions, arm, n, Path(tmp))
            for arm in ARMS
            for n in (0, requests)
        }
        totals = {key: job.result() for key, job in jobs.items()}
    per_request = {arm: (totals[arm, requests] - totals[arm, 0]) / requests for arm in ARMS}
    base = per_request["none"]
    return {
        "requests": requests,
        "warm_up": WARM_UP,
        "instructions_per_request": {arm: round(v) for arm, v in per_request.items()},
        "percent_over_none": {
            arm: round((v / base - 1) * 100, 2) for arm, v in per_request.items() if arm != "none"
        },
        "target_percent": TARGET_PERCENT,
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    over = results["percent_over_none"]
    verdict = "met" if over["mongopool"] <= TARGET_PERCENT else "**missed**"
    per = results["instructions_per_request"]
    return "\n".join(
        [
            f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, Django {m['django']}, "
            f"pymongo {m['pymongo']}; valgrind callgrind, {results['requests']} requests per arm "
            f"after {results['warm_up']} warm-up requests (start-up subtracted).",
            "",
            "| arm | instructions per request | vs no middleware |",
            "|---|---:|---:|",
            f"| no middleware | {per['none']} | baseline |",
            f"| a do-nothing middleware | {per['noop']} | {over['noop']:+.2f}% |",
            f"| `MongoSessionMiddleware` | {per['mongopool']} | {over['mongopool']:+.2f}% |",
            "",
            f"Target: the middleware within {TARGET_PERCENT:g}% of no middleware on a view that "
            f"never touches MongoDB: {verdict}.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="20 requests per arm")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--child", nargs=2, metavar=("ARM", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests = 20
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    from servers import machine

    results = {"machine": machine(), **measure(args.requests)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "instructions.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "instructions.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

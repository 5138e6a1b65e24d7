"""What django-mongopool costs in machine instructions: deterministic, unlike CPU time.

CPU time on a shared 2-core machine varies by a few percent from round to round, which is
the size of the targets themselves (bench/cpu.py). This harness counts the instructions the
process executes under valgrind's callgrind, which does not depend on what else the machine
is doing. Each arm runs twice in a fresh interpreter, once with 0 and once with N units after
the same warm-up, so start-up cancels out: (instructions(N) - instructions(0)) / N; every
run uses PYTHONHASHSEED=0, so dictionaries are laid out the same way each time.

- ``view``: a request to a view that never touches MongoDB, through Django's WSGI handler:
  ``none`` (no middleware), ``noop`` (a middleware whose ``__call__`` only calls the next
  one: what any middleware costs in Django's chain), ``mongopool``
  (``MongoSessionMiddleware``). No server is needed.
- ``mongodb``: bench/cpu.py's unit (``start_session``, ``insert_one``, ``find_one``,
  ``end_session``) on ``plain`` (a ``MongoClient`` with the same options) and ``app``
  (``django_mongopool.get_client()``), against our FerretDB (or ``MONGOPOOL_TEST_URL``).
  pymongo's monitor threads run too, so this figure moves by a fraction of a percent.

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
MONGODB_ARMS = ("plain", "app")
TARGET_PERCENT = 2.0
MONGODB_TARGET_PERCENT = 3.0
WARM_UP = 200
MONGODB_WARM_UP = 50


def mongodb_child(arm: str, units: int, url: str) -> None:
    """Runs inside valgrind: bench/cpu.py's unit on the plain or the app's client."""
    import uuid

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="benchsite.settings",
        BENCH_VARIANT="mongopool",
        BENCH_URL=url,
        BENCH_DB="bench_instructions",
    )
    import django

    django.setup()
    import cpu
    from django.test.utils import override_settings
    from pymongo import MongoClient

    import django_mongopool

    with override_settings(MONGOPOOL_CLIENT_OPTIONS=cpu.CLIENT_OPTIONS):
        if arm == "plain":
            plain = MongoClient(url, connect=False, **cpu.CLIENT_OPTIONS)
            get_client = lambda: plain  # noqa: E731
        else:
            get_client = django_mongopool.get_client
        prefix = uuid.uuid4().hex[:12]
        for label, count in (("w", MONGODB_WARM_UP), ("u", units)):
            keys = [f"{prefix}-{label}{n}" for n in range(count)]
            cpu.run_units(get_client, "bench_instructions", f"items_{arm}", keys)


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


def instructions(arm: str, requests: int, workdir: Path, url: str | None = None) -> int:
    out = workdir / f"callgrind.{arm}.{requests}"
    child_args = ["--child", arm, str(requests)]
    if url is not None:
        child_args = ["--mongodb-child", arm, str(requests), url]
    subprocess.run(
        [
            "env",
            "PYTHONHASHSEED=0",  # the same dict layouts in every run
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            *child_args,
        ],
        check=True,
        capture_output=True,
    )
    match = re.search(r"^summary: (\d+)", out.read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match.group(1))


def per_unit(arms: tuple[str, ...], units: int, url: str | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        jobs = {
            (arm, n): pool.submit(instructions, arm, n, Path(tmp), url)
            for arm in arms
            for n in (0, units)
        }
        totals = {key: job.result() for key, job in jobs.items()}
    return {arm: (totals[arm, units] - totals[arm, 0]) / units for arm in arms}


def measure(requests: int) -> dict:
    per_request = per_unit(tuple(ARMS), requests)
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


def measure_mongodb(units: int) -> dict:
    from servers import Server

    server = Server("plain")
    try:
        per = per_unit(MONGODB_ARMS, units, str(server.url))
    finally:
        server.stop()
    return {
        "server": server.name,
        "units": units,
        "warm_up": MONGODB_WARM_UP,
        "instructions_per_unit": {arm: round(v) for arm, v in per.items()},
        "app_percent_over_plain": round((per["app"] / per["plain"] - 1) * 100, 2),
        "target_percent": MONGODB_TARGET_PERCENT,
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    over = results["percent_over_none"]
    verdict = "met" if over["mongopool"] <= TARGET_PERCENT else "**missed**"
    per = results["instructions_per_request"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, Django {m['django']}, "
        f"pymongo {m['pymongo']}; valgrind callgrind, {results['requests']} requests per arm "
        f"after {results['warm_up']} warm-up requests (start-up subtracted); "
        f"code: commit {m.get('commit', 'not recorded')}.",
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
    mongodb = results.get("mongodb")
    if mongodb:
        unit = mongodb["instructions_per_unit"]
        over_plain = mongodb["app_percent_over_plain"]
        met = "met" if over_plain <= MONGODB_TARGET_PERCENT else "**missed**"
        lines += [
            f"MongoDB unit (start_session, insert_one, find_one, end_session), {mongodb['units']} "
            f"units per arm after {mongodb['warm_up']}; server: {mongodb['server']}.",
            "",
            "| arm | instructions per unit | vs plain |",
            "|---|---:|---:|",
            f"| plain `MongoClient`, same options | {unit['plain']} | baseline |",
            f"| `django_mongopool.get_client()` | {unit['app']} | {over_plain:+.2f}% |",
            "",
            f"Target: the app's client within {MONGODB_TARGET_PERCENT:g}% of a plain MongoClient: "
            f"{met} in user-space instructions. The target is set on CPU time (bench/cpu.py), "
            "which also counts the kernel's socket work of each unit, the same for both arms; "
            "callgrind counts user-space instructions only, so the same extra work is a larger "
            "share here.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--units", type=int, default=300, help="MongoDB units per arm")
    parser.add_argument("--smoke", action="store_true", help="20 requests, 5 units per arm")
    parser.add_argument(
        "--no-mongodb", action="store_true", help="only the view (no server needed)"
    )
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--child", nargs=2, metavar=("ARM", "REQUESTS"), help=argparse.SUPPRESS)
    parser.add_argument("--mongodb-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.units = 20, 5
    if args.mongodb_child:
        arm, units, url = args.mongodb_child
        mongodb_child(arm, int(units), url)
        return 0
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
    if not args.no_mongodb:
        results["mongodb"] = measure_mongodb(args.units)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "instructions.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "instructions.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

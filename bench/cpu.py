"""What django-mongopool costs the web process: client-side CPU time per unit of work.

Wall time on a shared machine mostly measures the server and the scheduler, so this
harness measures the CPU time the benchmarking process itself spends
(``time.process_time()``: every thread of this process, pymongo's monitors included; the
calling thread alone, ``time.thread_time()``, is reported beside it) per unit. The arms run
in interleaved rounds (their order rotates every round, so drift hits all of them alike),
in several fresh processes one after the other: a process's memory layout decides which of
Python's cached lookups collide, which moves its figures by a few points, so the figures are
medians over processes of each process's median (comparisons: of its per-round ratios).

Units:

- ``mongodb``: one request-like unit on one thread: ``start_session()``, ``insert_one``,
  ``find_one`` by a string ``_id``, ``end_session()``, on
  ``plain`` (a pymongo ``MongoClient`` built with the same options as the app's client),
  ``listener`` (the same plus a ``ConnectionPoolListener`` whose methods do nothing: the
  price of pymongo's own event dispatch) and ``app`` (``django_mongopool.get_client()``).
- ``view``: one request to a view that never touches MongoDB, through Django's full WSGI
  handler: without middleware, with a middleware whose ``__call__`` only calls the next one
  (``noop``: what any middleware costs in Django's chain) and with ``MongoSessionMiddleware``.

Targets (issue 13): the app's client within 3 % of plain; the middleware within 2 % of none.

    python bench/cpu.py                            # full run (about 8 minutes on 2 cores)
    python bench/cpu.py --smoke --out /tmp/cpu     # a few short rounds (used by the tests)
    python bench/cpu.py --server-mode tls_scram    # against the TLS + SCRAM server

The server is our own FerretDB (or MONGOPOOL_TEST_URL / MONGOPOOL_TEST_SECURE_URL, see
bench/servers.py). Results: bench/results/cpu.json and cpu.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from pymongo import monitoring  # noqa: E402
from servers import MODES, Server, machine  # noqa: E402

from django_mongopool.client.options import DEFAULT_CLIENT_OPTIONS  # noqa: E402
from django_mongopool.guards.redact import scrub, uri_secrets  # noqa: E402

# Every option the app would otherwise default, spelled out, so the plain client gets the same.
CLIENT_OPTIONS: dict[str, Any] = {**DEFAULT_CLIENT_OPTIONS, "appname": "bench-cpu"}
TARGETS = {"app": 3.0, "middleware": 2.0}  # percent over the baseline
MIDDLEWARE = "django_mongopool.middleware.MongoSessionMiddleware"
NOOP_MIDDLEWARE = "benchsite.noop.NoopMiddleware"  # what any middleware costs in Django's chain
COMPARED_OPTIONS = [
    "pool_options.max_pool_size",
    "pool_options.min_pool_size",
    "pool_options.max_idle_time_seconds",
    "pool_options.max_connecting",
    "pool_options.wait_queue_timeout",
    "pool_options.connect_timeout",
    "pool_options.socket_timeout",
    "pool_options.appname",
    "server_selection_timeout",
    "heartbeat_frequency",
    "read_preference",
    "read_concern",
    "write_concern",
    "retry_reads",
    "retry_writes",
    "timeout",
    "codec_options",
]


# --- timing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """Per-unit CPU (process and thread) and wall microseconds of one batch."""

    process_us: float
    thread_us: float
    wall_us: float


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: ``prepare`` runs outside the clock, ``run`` inside it."""

    prepare: Callable[[], Any]
    run: Callable[[Any], None]


def measure(arm: Arm, units: int) -> Sample:
    batch = arm.prepare()
    gc.collect()
    process, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    arm.run(batch)
    return Sample(
        (time.process_time() - process) / units * 1e6,
        (time.thread_time() - thread) / units * 1e6,
        (time.perf_counter() - wall) / units * 1e6,
    )


def interleaved(arms: dict[str, Arm], units: int, rounds: int) -> list[dict]:
    """``rounds`` rounds of every arm, the arms' order rotated by one each round."""
    names = list(arms)
    for name in names:  # warm-up: imports, pools, first connections, caches
        measure(arms[name], units)
    per_round = []
    for round_no in range(rounds):
        shift = round_no % len(names)
        order = names[shift:] + names[:shift]
        per_round.append({name: measure(arms[name], units) for name in order})
    return per_round


def _per_process(per_round: list[dict], baseline: str) -> dict:
    """One process's medians per arm and, against ``baseline``, its median of per-round ratios."""
    arms: dict[str, Any] = {}
    for name in per_round[0]:
        row = {
            f"{kind}_us": statistics.median(getattr(r[name], kind + "_us") for r in per_round)
            for kind in ("process", "thread", "wall")
        }
        if name != baseline:
            for kind in ("process", "thread"):
                ratio = statistics.median(
                    getattr(r[name], f"{kind}_us") / getattr(r[baseline], f"{kind}_us")
                    for r in per_round
                )
                row[f"{kind}_vs_{baseline}_percent"] = (ratio - 1) * 100
        arms[name] = row
    return arms


def summarise(per_process: list[list[dict]], baseline: str, target: float | None = None) -> dict:
    """Each process's medians and median per-round ratios; then their median over processes
    (with the per-process figures kept, so the spread between processes shows)."""
    processes = [_per_process(per_round, baseline) for per_round in per_process]
    arms: dict[str, Any] = {}
    for name in processes[0]:
        row: dict[str, Any] = {}
        for key in processes[0][name]:
            values = [p[name][key] for p in processes]
            row[key] = round(statistics.median(values), 2)
            if key.endswith("_percent"):
                row[key.replace("_percent", "_per_process")] = [round(v, 2) for v in values]
        arms[name] = row
    summary: dict[str, Any] = {
        "baseline": baseline,
        "processes": len(per_process),
        "rounds": len(per_process[0]),
        "arms": arms,
    }
    if target is not None:
        summary["target_percent"] = target
    return summary


# --- unit (a): MongoDB work on one thread ------------------------------------------------


class QuietPoolListener(monitoring.ConnectionPoolListener):
    """A pool listener whose methods do nothing: what pymongo's event dispatch alone costs."""

    def pool_created(self, event: Any) -> None: ...
    def pool_ready(self, event: Any) -> None: ...
    def pool_cleared(self, event: Any) -> None: ...
    def pool_closed(self, event: Any) -> None: ...
    def connection_created(self, event: Any) -> None: ...
    def connection_ready(self, event: Any) -> None: ...
    def connection_closed(self, event: Any) -> None: ...
    def connection_check_out_started(self, event: Any) -> None: ...
    def connection_check_out_failed(self, event: Any) -> None: ...
    def connection_checked_out(self, event: Any) -> None: ...
    def connection_checked_in(self, event: Any) -> None: ...


def unit_arm(get_client: Callable[[], Any], database: str, collection: str, units: int) -> Arm:
    """Batches of ``units`` request-like units; the string keys are made before the clock."""

    def keys() -> list[str]:
        prefix = uuid.uuid4().hex[:12]
        return [f"{prefix}-{n}" for n in range(units)]

    return Arm(keys, lambda batch: run_units(get_client, database, collection, batch))


def run_units(
    get_client: Callable[[], Any], database: str, collection: str, keys: list[str]
) -> None:
    """What a view does per request: the client, its collection, one session, two operations."""
    for key in keys:
        client = get_client()
        items = client[database][collection]
        session = client.start_session()
        items.insert_one({"_id": key}, session=session)
        items.find_one({"_id": key}, session=session)
        session.end_session()


def option_differences(plain: Any, app: Any) -> list[str]:
    """Options in ``COMPARED_OPTIONS`` where the app's client and the plain one differ."""
    differences = []
    for path in COMPARED_OPTIONS:
        a, b = plain.options, app.options
        for part in path.split("."):
            a, b = getattr(a, part), getattr(b, part)
        if a != b:
            differences.append(f"{path}: plain {a!r}, app {b!r}")
    return differences


def mongodb_units(url: str, database: str, units: int, rounds: int) -> dict:
    """This process's rounds of the MongoDB unit (and what the summary says about the clients)."""
    from pymongo import MongoClient

    import django_mongopool

    plain = MongoClient(url, connect=False, **CLIENT_OPTIONS)
    listened = MongoClient(
        url, connect=False, event_listeners=[QuietPoolListener()], **CLIENT_OPTIONS
    )
    try:
        arms = {
            "plain": unit_arm(lambda: plain, database, "items_plain", units),
            "listener": unit_arm(lambda: listened, database, "items_listener", units),
            "app": unit_arm(django_mongopool.get_client, database, "items_app", units),
        }
        per_round = interleaved(arms, units, rounds)
        app = django_mongopool.get_client()
        return {
            "rounds": [{name: list(vars(s).values()) for name, s in r.items()} for r in per_round],
            "option_differences": option_differences(plain, app),
            "app_listeners": [type(x).__name__ for x in app.options.event_listeners],
        }
    finally:
        plain.close()
        listened.close()


# --- unit (b): a view that never touches MongoDB -----------------------------------------


def _start_response(status: str, headers: list, exc_info: Any = None) -> None:
    return None


def handler_arm(middleware: list[str], requests: int) -> Arm:
    """GET /noop through a WSGIHandler built with ``middleware`` (MIDDLEWARE)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=middleware):
        handler = WSGIHandler()
    factory = RequestFactory()

    def environs() -> list[dict]:
        return [factory.get("/noop").environ for _ in range(requests)]

    def run(batch: list[dict]) -> None:
        for environ in batch:
            response = handler(environ, _start_response)
            b"".join(response)
            response.close()

    return Arm(environs, run)


def middleware_units(requests: int, rounds: int) -> dict:
    """This process's rounds of the view unit."""
    arms = {
        "without": handler_arm([], requests),
        "noop": handler_arm([NOOP_MIDDLEWARE], requests),
        "with": handler_arm([MIDDLEWARE], requests),
    }
    per_round = interleaved(arms, requests, rounds)
    return {"rounds": [{name: list(vars(s).values()) for name, s in r.items()} for r in per_round]}


def _samples(rounds: list[dict]) -> list[dict]:
    return [{name: Sample(*values) for name, values in r.items()} for r in rounds]


# --- report ------------------------------------------------------------------------------


def verdict(percent: float, target: float) -> str:
    return "met" if percent <= target else "**missed**"


def markdown(results: dict) -> str:
    m = results["machine"]
    a, b = results["mongodb"], results["view"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM; Python {m['python']}, "
        f"pymongo {m['pymongo']}, Django {m['django']}; {m['os']}; "
        f"code: commit {m.get('commit', 'not recorded')}.",
        f"Server: {results['server']}.",
        "",
        "Client-process CPU time per unit (`time.process_time()` of the benchmarking process, all "
        "its threads; the calling thread's `time.thread_time()` beside it), not wall time. "
        f"{a['processes']} fresh processes, one after the other, each running both units in "
        f"{a['rounds']} interleaved rounds (MongoDB unit: {a['units_per_round']} units per arm "
        f"and round; view: {b['requests_per_round']} requests). Each process's figure is the "
        "median of its per-round ratios; the table gives the median over processes, and the "
        "lowest and highest process beside it (a process's memory layout alone moves its "
        "figures by a few points).",
        "",
        "| unit | arm | CPU us/unit | thread CPU us/unit | wall us/unit | CPU vs baseline | "
        "processes (low .. high) | thread CPU vs baseline | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    labels = {
        "plain": "plain `MongoClient`, same options",
        "listener": "plain + do-nothing pool listener",
        "app": "`django_mongopool.get_client()`",
        "without": "no middleware",
        "noop": "a do-nothing middleware",
        "with": "`MongoSessionMiddleware`",
    }
    targeted = {"app": a, "with": b}
    for unit, summary in (("start/insert/find/end session", a), ("view without MongoDB", b)):
        base = summary["baseline"]
        for name, row in summary["arms"].items():
            cpu = row.get(f"process_vs_{base}_percent")
            thread = row.get(f"thread_vs_{base}_percent")
            target = ""
            if name in targeted:
                limit = targeted[name]["target_percent"]
                target = f"within {limit:g}%: {verdict(cpu, limit)}"
            spread = row.get(f"process_vs_{base}_per_process")
            lines.append(
                f"| {unit} | {labels[name]} | {row['process_us']} | {row['thread_us']} | "
                f"{row['wall_us']} | {'baseline' if cpu is None else f'{cpu:+.2f}%'} | "
                f"{'' if spread is None else f'{min(spread):+.2f}% .. {max(spread):+.2f}%'} | "
                f"{'baseline' if thread is None else f'{thread:+.2f}%'} | {target} |"
            )
    lines.append("")
    lines.append(f"The app's client listeners: {', '.join(a['app_listeners']) or 'none'}.")
    differences = a["option_differences"]
    lines.append(
        "Options compared between the plain and the app's client: "
        + ("; ".join(differences) if differences else "all the same.")
    )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Bars of CPU per unit for each arm, with the target line over each baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, unit, title in (
        (axes[0], "mongodb", "start/insert/find/end session"),
        (axes[1], "view", "view without MongoDB"),
    ):
        arms = results[unit]["arms"]
        names = list(arms)
        values = [arms[name]["process_us"] for name in names]
        ax.bar(names, values, color=["#999"] + ["#2a6ebb"] * (len(names) - 1))
        baseline = arms[results[unit]["baseline"]]["process_us"]
        target = baseline * (1 + results[unit]["target_percent"] / 100)
        ax.axhline(target, color="#c0392b", linestyle="--", label="target")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("client CPU us per unit")
        ax.legend(fontsize=8)
    fig.suptitle(f"django-mongopool: client-process CPU ({results['machine']['cpu']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "cpu.md").write_text(markdown(results))
    plot(results, out / "cpu.png")


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--processes", type=int, default=9, help="fresh interpreters, one after the other"
    )
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per process")
    parser.add_argument("--units", type=int, default=150, help="MongoDB units per arm and round")
    parser.add_argument(
        "--requests", type=int, default=2000, help="view requests per arm and round"
    )
    parser.add_argument("--server-mode", choices=MODES, default="plain")
    parser.add_argument("--smoke", action="store_true", help="2 processes of 2 short rounds")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.processes, args.rounds, args.units, args.requests = 2, 2, 10, 50
    return args


def setup_django(url: str, database: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="benchsite.settings",
        BENCH_VARIANT="mongopool",
        BENCH_URL=url,
        BENCH_DB=database,
    )
    import django

    django.setup()


RESULT_MARK = "CPU-RESULT "  # the child's result line on stdout; anything else there is ignored
CHILD_TIMEOUT_SECONDS = 1800


def child(args: argparse.Namespace) -> None:
    """One fresh interpreter's rounds of both units, as one marked JSON line on stdout. The
    server's URL comes in the environment (``BENCH_URL``): it may hold credentials, and a
    command line is visible to every user of the machine."""
    url, database = os.environ["BENCH_URL"], os.environ["BENCH_DB"]
    setup_django(url, database)
    from django.test.utils import override_settings

    with override_settings(MONGOPOOL_CLIENT_OPTIONS=CLIENT_OPTIONS):
        result = {
            "mongodb": mongodb_units(url, database, args.units, args.rounds),
            "view": middleware_units(args.requests, args.rounds),
        }
    print(RESULT_MARK + json.dumps(result), flush=True)


def run_processes(args: argparse.Namespace, url: str, database: str) -> list[dict]:
    """``args.processes`` children, one after the other: each has its own memory layout (and
    so its own luck with caches), which a single process's rounds cannot average out."""
    command = [sys.executable, __file__, "--child", "--rounds", str(args.rounds)]
    command += ["--units", str(args.units), "--requests", str(args.requests)]
    environment = {**os.environ, "BENCH_URL": url, "BENCH_DB": database}
    results = []
    for _ in range(args.processes):
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env=environment,
            timeout=CHILD_TIMEOUT_SECONDS,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
        if done.returncode != 0 or len(lines) != 1:
            raise RuntimeError(
                f"a benchmark process failed (exit status {done.returncode}):\n"
                f"{scrub(done.stderr[-4000:], uri_secrets(url))}"
            )
        results.append(json.loads(lines[0][len(RESULT_MARK) :]))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    server = Server(args.server_mode)
    database = f"bench_cpu_{uuid.uuid4().hex[:6]}"
    try:
        children = run_processes(args, str(server.url), database)
    finally:
        try:
            from pymongo import MongoClient

            with MongoClient(str(server.url), **CLIENT_OPTIONS) as cleanup:
                cleanup.drop_database(database)
        finally:
            server.stop()
    mongodb = summarise(
        [_samples(c["mongodb"]["rounds"]) for c in children], "plain", TARGETS["app"]
    )
    mongodb["units_per_round"] = args.units
    mongodb["option_differences"] = children[0]["mongodb"]["option_differences"]
    mongodb["app_listeners"] = children[0]["mongodb"]["app_listeners"]
    view = summarise(
        [_samples(c["view"]["rounds"]) for c in children], "without", TARGETS["middleware"]
    )
    view["requests_per_round"] = args.requests
    results = {
        "machine": machine(),
        "server": server.name,
        "server_mode": args.server_mode,
        "client_options": CLIENT_OPTIONS,
        "mongodb": mongodb,
        "view": view,
    }
    write_outputs(results, Path(args.out))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

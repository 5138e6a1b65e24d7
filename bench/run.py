"""django-mongopool benchmark harness: the usual ways of reaching MongoDB, side by side, in one run.

    python bench/run.py                       # full run (about 10 minutes on 2 cores)
    python bench/run.py --smoke               # one variant, few requests (used by the tests)
    python bench/run.py --smoke --variants orm_stock,orm_pooled   # the ORM variants, smoke only
    MONGOPOOL_TEST_URL=mongodb://... python bench/run.py   # against a real MongoDB
    python bench/run.py --server-mode tls_scram   # TLS + SCRAM server: client per request
                                                  # vs. django-mongopool (about 9 minutes)

Each (concurrency, variant) pair gets a fresh waitress process (32 threads; uvicorn for the
mongopool_asgi variant) and a fresh database; the load comes from bench/load.py in another process. Server-side connections
are read from FerretDB's own metrics (accepted minus finished) and, for any server, from
the operating system (established sockets of the web process to the server's port).
Results: bench/results/results.json, results.md, connections_throughput.png; with
``--server-mode tls_scram`` (FerretDB on TLS only with a throw-away CA and SCRAM-SHA-256, or
MONGOPOOL_TEST_SECURE_URL): bench/results/tls_scram.json, tls_scram.md, tls_scram.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from servers import MODES, Server, free_port, machine  # noqa: E402

VARIANTS = [
    "client_per_request",
    "module_level",
    "per_thread",
    "mongopool",
    "mongopool_asgi",
    "mongoengine",
    "orm_stock",
    "orm_pooled",
]
# Django ORM on django-mongodb-backend: its own client (orm_stock) or the app's (orm_pooled).
ORM_VARIANTS = ("orm_stock", "orm_pooled")
CONCURRENCY = [1, 16, 64, 256]
THREADS = 32
POOL = 10
# The TLS + SCRAM mode prices what a new client costs when every connection pays a TLS
# handshake and a SCRAM conversation; module-level stays as the hand-written reference.
TLS_SCRAM_VARIANTS = ["client_per_request", "module_level", "mongopool"]
TARGET_VS_CLIENT_PER_REQUEST = 10.0
# Output names per server mode: json, md, png.
OUTPUTS = {
    "plain": ("results.json", "results.md", "connections_throughput.png"),
    "tls_scram": ("tls_scram.json", "tls_scram.md", "tls_scram.png"),
}


def start_site(
    server: Server, variant: str, database: str, **extra: str
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "BENCH_VARIANT": variant,
        "BENCH_URL": server.url,
        "BENCH_DB": database,
        "BENCH_POOL": str(POOL),
        "DJANGO_SETTINGS_MODULE": "benchsite.settings",
        **extra,
    }
    if variant.endswith("_asgi"):  # uvicorn, one event loop
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--host=127.0.0.1",
            f"--port={port}",
            "--no-access-log",
            "--backlog=2048",
            "benchsite.asgi:application",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "waitress",
            f"--listen=127.0.0.1:{port}",
            f"--threads={THREADS}",
            "--connection-limit=1000",
            "--backlog=2048",
            "benchsite.wsgi:application",
        ]
    process = subprocess.Popen(
        command, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/noop", timeout=2).read()
            return process, port
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"benchmark site for {variant} exited") from None
            time.sleep(0.05)
    raise RuntimeError("benchmark site did not start")


def load(port: int, path: str, concurrency: int, requests: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "load.py"),
            "--port",
            str(port),
            "--path",
            path,
            "--concurrency",
            str(concurrency),
            "--requests",
            str(requests),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


class Sampler(threading.Thread):
    """Samples connections and memory every 50 ms while a load runs."""

    def __init__(self, server: Server, site_pid: int) -> None:
        super().__init__(daemon=True)
        self.server, self.site = server, psutil.Process(site_pid)
        self.stop_event = threading.Event()
        self.os_peak = self.ferret_peak = 0
        self.site_rss = self.server_rss = 0.0
        self.local_ports: set[int] = set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                conns = [
                    c
                    for c in self.site.net_connections(kind="tcp")
                    if c.raddr
                    and c.raddr.port in self.server.ports
                    and c.status == psutil.CONN_ESTABLISHED
                ]
                self.os_peak = max(self.os_peak, len(conns))
                self.local_ports.update(c.laddr.port for c in conns)
                self.site_rss = max(self.site_rss, self.site.memory_info().rss / 2**20)
                counts = self.server.ferret_counts()
                if counts:
                    self.ferret_peak = max(self.ferret_peak, int(counts[0] - counts[1]))
                self.server_rss = max(self.server_rss, self.server.rss_mb() or 0.0)
            except (psutil.Error, OSError):
                pass
            self.stop_event.wait(0.05)


def run_one(server: Server, variant: str, concurrency: int, requests: int) -> dict:
    database = f"bench_{variant}_{concurrency}_{uuid.uuid4().hex[:6]}"
    process, port = start_site(server, variant, database)
    try:
        load(port, "/work", min(concurrency, 8), 30)  # warm up: imports, pools, first connections
        before = server.ferret_counts()
        web_cpu, server_cpu = _cpu_seconds(process.pid), server.cpu_seconds()
        sampler = Sampler(server, process.pid)
        sampler.start()
        result = load(port, "/work", concurrency, requests)
        sampler.stop_event.set()
        sampler.join()
        after = server.ferret_counts()
        web_cpu = _cpu_seconds(process.pid) - web_cpu
        server_cpu_after = server.cpu_seconds()
    finally:
        process.terminate()
        process.wait(timeout=60)
        from pymongo import MongoClient

        with MongoClient(server.url) as client:
            client.drop_database(database)
    result.update(
        variant=variant,
        concurrency=concurrency,
        peak_connections_os=sampler.os_peak,
        peak_connections_server=sampler.ferret_peak if before else None,
        total_connections_server=int(after[0] - before[0]) if before else None,
        distinct_client_sockets_os=len(sampler.local_ports),
        peak_rss_mb_web=round(sampler.site_rss, 1),
        peak_rss_mb_server=round(sampler.server_rss, 1) if before else None,
        # CPU time per request of the web process (its threads) and of the server process.
        web_cpu_ms_per_request=round(web_cpu / requests * 1000, 3),
        server_cpu_ms_per_request=(
            round((server_cpu_after - server_cpu) / requests * 1000, 3)
            if server_cpu is not None and server_cpu_after is not None
            else None
        ),
    )
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def orm_available() -> str | None:
    try:
        import django_mongodb_backend  # noqa: F401
    except ImportError as exc:
        return (
            f'django-mongodb-backend is not installed ({exc}): pip install "django-mongopool[orm]"'
        )
    return None


def mongoengine_available() -> str | None:
    try:
        import mongoengine  # noqa: F401
    except ImportError as exc:
        return f"MongoEngine is not installed ({exc})"
    return None


def time_to_503(server: Server) -> dict:
    """maxPoolSize=2 held by two slow requests; how long the third waits for its 503."""
    database = f"bench_saturation_{uuid.uuid4().hex[:6]}"
    wait_ms = 200
    process, port = start_site(
        server,
        "mongopool",
        database,
        BENCH_POOL="2",
        BENCH_WAIT_QUEUE_TIMEOUT_MS=str(wait_ms),
        BENCH_HOLD_MS="1500",
    )
    try:
        slow = [
            threading.Thread(
                target=lambda: urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/slow", timeout=30
                ).read()
            )
            for _ in range(2)
        ]
        for thread in slow:
            thread.start()
        time.sleep(0.3)  # let both slow requests take the two connections
        timings, statuses = [], []
        for _ in range(5):
            started = time.perf_counter()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/work", timeout=30).read()
                statuses.append(200)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
                retry_after = exc.headers.get("Retry-After")
            timings.append((time.perf_counter() - started) * 1000)
        for thread in slow:
            thread.join()
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {
        "maxPoolSize": 2,
        "waitQueueTimeoutMS": wait_ms,
        "statuses": statuses,
        "retry_after": retry_after if 503 in statuses else None,
        "median_ms": round(statistics.median(timings), 1),
        "max_ms": round(max(timings), 1),
    }


def overhead(server: Server, rounds: int, requests: int, mongo_requests: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "overhead.py"),
            "--rounds",
            str(rounds),
            "--requests",
            str(requests),
            "--mongo-requests",
            str(mongo_requests),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE,
        env={
            **os.environ,
            "BENCH_URL": server.url,
            "BENCH_DB": f"bench_overhead_{uuid.uuid4().hex[:6]}",
        },
    )
    return json.loads(out.stdout)


def http_overhead(server: Server, rounds: int, requests: int) -> dict:
    """The same A/B through waitress and the load generator (HTTP included), on /noop."""
    database = f"bench_http_{uuid.uuid4().hex[:6]}"
    with_mw, port_with = start_site(server, "mongopool", database, BENCH_MIDDLEWARE="1")
    without, port_without = start_site(server, "mongopool", database, BENCH_MIDDLEWARE="0")
    try:
        ratios, a, b = [], [], []
        for round_no in range(rounds):
            order = [(True, port_with), (False, port_without)]
            if round_no % 2:
                order.reverse()
            got = {}
            for flag, port in order:
                got[flag] = load(port, "/noop", 4, requests)["throughput"]
            a.append(got[True])
            b.append(got[False])
            ratios.append(got[False] / got[True])
    finally:
        for process in (with_mw, without):
            process.terminate()
            process.wait(timeout=60)
    return {
        "throughput_with": round(statistics.median(a), 1),
        "throughput_without": round(statistics.median(b), 1),
        "overhead_percent": round((statistics.median(ratios) - 1) * 100, 2),
        "rounds": rounds,
    }


def ratios(server: Server, concurrency: int, rounds: int, requests: int) -> dict:
    """Repeated, interleaved runs at one concurrency: single runs on 2 cores vary by +-15%."""
    variants = ["client_per_request", "module_level", "mongopool"]
    seen: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, dict[str, list[float]]] = {v: {"web": [], "server": []} for v in variants}
    per_round = []
    for round_no in range(rounds):
        order = variants[round_no % 3 :] + variants[: round_no % 3]
        runs = {v: run_one(server, v, concurrency, requests) for v in order}
        got = {v: run["throughput"] for v, run in runs.items()}
        for v in variants:
            seen[v].append(got[v])
            cpu[v]["web"].append(runs[v]["web_cpu_ms_per_request"])
            if runs[v]["server_cpu_ms_per_request"] is not None:
                cpu[v]["server"].append(runs[v]["server_cpu_ms_per_request"])
        per_round.append(got)
    median = {v: round(statistics.median(values), 1) for v, values in seen.items()}
    return {
        "concurrency": concurrency,
        "rounds": rounds,
        "requests": requests,
        "throughput_median": median,
        # CPU ms per request, medians over rounds: the web process and the server process.
        "cpu_ms_per_request_median": {
            v: {
                side: round(statistics.median(values), 3) if values else None
                for side, values in sides.items()
            }
            for v, sides in cpu.items()
        },
        "mongopool_vs_client_per_request": round(
            statistics.median(r["mongopool"] / r["client_per_request"] for r in per_round), 2
        ),
        "mongopool_vs_module_level_percent": round(
            (statistics.median(r["mongopool"] / r["module_level"] for r in per_round) - 1) * 100, 1
        ),
        "per_round": per_round,
    }


def write_outputs(results: dict, out: Path) -> None:
    json_name, md_name, png_name = OUTPUTS[results.get("server_mode", "plain")]
    out.mkdir(parents=True, exist_ok=True)
    (out / json_name).write_text(json.dumps(results, indent=2) + "\n")
    (out / md_name).write_text(markdown(results))
    plot(results, out / png_name)


def targets(results: dict) -> list[str]:
    """The TLS + SCRAM targets, stated plainly: 10x at concurrency 64, bounded peak connections."""
    lines = []
    if "ratios_at_64" in results:
        ratio = results["ratios_at_64"]["mongopool_vs_client_per_request"]
        met = "met" if ratio >= TARGET_VS_CLIENT_PER_REQUEST else "**missed**"
        lines.append(
            f"- Throughput at concurrency 64: django-mongopool is {ratio}x client-per-request "
            f"(target: at least {TARGET_VS_CLIENT_PER_REQUEST:g}x, {met})."
        )
    bound = POOL + 2
    for r in results["runs"]:
        if r["variant"] == "mongopool" and r["concurrency"] == max(
            x["concurrency"] for x in results["runs"]
        ):
            met = "met" if r["peak_connections_os"] <= bound else "**missed**"
            lines.append(
                f"- Peak connections at concurrency {r['concurrency']}: django-mongopool "
                f"{r['peak_connections_os']} (bound maxPoolSize {POOL} + 2 monitors = {bound}, "
                f"{met})."
            )
    return ["", "Against the targets:", "", *lines] if lines else []


def markdown(results: dict) -> str:
    lines = [
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"{results['machine']['memory_gb']} GB; server: {results['server']}; web: waitress (uvicorn for mongopool_asgi), "
        f"{THREADS} threads, 1 process; maxPoolSize {POOL}; {results['requests']} requests per cell; "
        f"code: commit {results['machine'].get('commit', 'not recorded')}.",
        "",
        "| variant | concurrency | req/s | p50 ms | p99 ms | errors | peak conns (server) | peak conns (OS) | total conns opened | server RSS MB | web RSS MB | web CPU ms/req | server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        server_cpu = r.get("server_cpu_ms_per_request")
        lines.append(
            f"| {r['variant']} | {r['concurrency']} | {r['throughput']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['errors']} | {r['peak_connections_server'] if r['peak_connections_server'] is not None else '-'} | "
            f"{r['peak_connections_os']} | {r['total_connections_server'] if r['total_connections_server'] is not None else r['distinct_client_sockets_os']} | "
            f"{r['peak_rss_mb_server'] if r['peak_rss_mb_server'] is not None else '-'} | {r['peak_rss_mb_web']} | "
            f"{r.get('web_cpu_ms_per_request', '-')} | {'-' if server_cpu is None else server_cpu} |"
        )
    if "ratios_at_64" in results:
        r = results["ratios_at_64"]
        lines.append(
            f"\nRepeated at concurrency {r['concurrency']} ({r['rounds']} interleaved rounds of "
            f"{r['requests']} requests): median req/s {r['throughput_median']}; django-mongopool is "
            f"{r['mongopool_vs_client_per_request']}x client-per-request and "
            f"{r['mongopool_vs_module_level_percent']:+}% against module-level."
        )
        if "cpu_ms_per_request_median" in r:
            lines.append(
                "CPU ms per request in those rounds (medians; web process, server process): "
                + "; ".join(
                    f"{v} {c['web']} + {'-' if c['server'] is None else c['server']}"
                    for v, c in r["cpu_ms_per_request_median"].items()
                )
                + "."
            )
    for name, note in results.get("skipped", {}).items():
        lines.append(f"\n{name}: {note}")
    if results.get("server_mode") == "tls_scram":
        lines += targets(results)
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for variant in sorted({r["variant"] for r in results["runs"]}):
        rows = sorted(
            (r for r in results["runs"] if r["variant"] == variant), key=lambda r: r["concurrency"]
        )
        xs = [r["concurrency"] for r in rows]
        left.plot(xs, [r["peak_connections_os"] for r in rows], marker="o", label=variant)
        right.plot(xs, [r["throughput"] for r in rows], marker="o", label=variant)
    for axis, title in (
        (left, "Peak connections to the server"),
        (right, "Throughput (requests/s)"),
    ):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"{results['server']}, {results['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument(
        "--variants",
        help=f"default: all in plain mode, {','.join(TLS_SCRAM_VARIANTS)} in tls_scram mode",
    )
    parser.add_argument(
        "--server-mode",
        choices=MODES,
        default="plain",
        help="plain (default) or tls_scram: FerretDB on TLS only with SCRAM-SHA-256 users",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="c=4, 40 requests, quick extras (plain: mongopool only; tls_scram: "
        "client_per_request and mongopool)",
    )
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument(
        "--merge", action="store_true", help="run only --variants and merge them into OUT's results"
    )
    parser.add_argument(
        "--ratios-only", action="store_true", help="only redo the repeated c=64 comparison in OUT"
    )
    args = parser.parse_args(argv)
    tls_scram = args.server_mode == "tls_scram"
    chosen = args.variants is not None
    if not chosen:
        args.variants = ",".join(TLS_SCRAM_VARIANTS if tls_scram else VARIANTS)
    if args.smoke:
        args.requests, args.concurrency = 40, "4"
        if not chosen:
            args.variants = "client_per_request,mongopool" if tls_scram else "mongopool"
    return args


def previous_results(args: argparse.Namespace) -> dict:
    return json.loads((Path(args.out) / OUTPUTS[args.server_mode][0]).read_text())


def redo_ratios(server: Server, args: argparse.Namespace) -> dict:
    results = previous_results(args)
    results["ratios_at_64"] = ratios(server, 64, 5, 1000)
    print(json.dumps(results["ratios_at_64"], indent=2))
    return results


def merge(server: Server, args: argparse.Namespace, variants: list[str]) -> dict:
    results = previous_results(args)
    runs = [r for r in results["runs"] if r["variant"] not in variants]
    for concurrency in concurrencies_of(args):
        for variant in variants:
            print(f"  {variant} at concurrency {concurrency} ...", file=sys.stderr, flush=True)
            runs.append(run_one(server, variant, concurrency, args.requests))
    results["runs"] = sorted(runs, key=lambda r: (VARIANTS.index(r["variant"]), r["concurrency"]))
    return results


def concurrencies_of(args: argparse.Namespace) -> list[int]:
    return [int(c) for c in args.concurrency.split(",")]


def all_cells(server: Server, args: argparse.Namespace, variants: list[str]) -> list[dict]:
    """Every (concurrency, variant) cell, the variant order rotated per concurrency."""
    runs = []
    for index, concurrency in enumerate(concurrencies_of(args)):
        order = variants[index % len(variants) :] + variants[: index % len(variants)]
        for variant in order:
            print(f"  {variant} at concurrency {concurrency} ...", file=sys.stderr, flush=True)
            runs.append(run_one(server, variant, concurrency, args.requests))
    return sorted(runs, key=lambda r: (VARIANTS.index(r["variant"]), r["concurrency"]))


def plain_extras(server: Server, smoke: bool) -> dict:
    """Middleware overhead and time to 503: measured in plain mode only."""
    rounds = 4 if smoke else 30
    return {
        "middleware_overhead": overhead(server, rounds, 50 if smoke else 300, 5 if smoke else 40),
        "middleware_overhead_http": http_overhead(
            server, 2 if smoke else 12, 200 if smoke else 2000
        ),
        "time_to_503": time_to_503(server),
    }


def full_run(server: Server, args: argparse.Namespace, variants: list[str], skipped: dict) -> dict:
    results = {
        "machine": machine(),
        "server": server.name,
        "server_mode": args.server_mode,
        "requests": args.requests,
        "threads": THREADS,
        "max_pool_size": POOL,
        "runs": all_cells(server, args, variants),
        "skipped": skipped,
    }
    if args.server_mode == "plain":
        results.update(plain_extras(server, args.smoke))
    results["ratios_at_64"] = ratios(server, 64, 1 if args.smoke else 5, 40 if args.smoke else 1000)
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    skipped = {}
    if "mongoengine" in variants and (reason := mongoengine_available()):
        variants.remove("mongoengine")
        skipped["mongoengine"] = reason
    if any(v in variants for v in ORM_VARIANTS) and (reason := orm_available()):
        for variant in ORM_VARIANTS:
            if variant in variants:
                variants.remove(variant)
                skipped[variant] = reason
    server = Server(args.server_mode)
    try:
        if args.ratios_only:
            results = redo_ratios(server, args)
        elif args.merge:
            results = merge(server, args, variants)
        else:
            results = full_run(server, args, variants, skipped)
    finally:
        server.stop()
    results.setdefault("server_mode", args.server_mode)
    write_outputs(results, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

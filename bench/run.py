"""django-mongopool benchmark harness: the usual ways of reaching MongoDB, side by side, in one run.

    python bench/run.py                       # full run (about 10 minutes on 2 cores)
    python bench/run.py --smoke               # one variant, few requests (used by the tests)
    MONGOPOOL_TEST_URL=mongodb://... python bench/run.py   # against a real MongoDB

Each (concurrency, variant) pair gets a fresh waitress process (32 threads; uvicorn for the
mongopool_asgi variant) and a fresh database; the load comes from bench/load.py in another process. Server-side connections
are read from FerretDB's own metrics (accepted minus finished) and, for any server, from
the operating system (established sockets of the web process to the server's port).
Results: bench/results/results.json, results.md, connections_throughput.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

VARIANTS = [
    "client_per_request",
    "module_level",
    "per_thread",
    "mongopool",
    "mongopool_asgi",
    "mongoengine",
]
CONCURRENCY = [1, 16, 64, 256]
THREADS = 32
POOL = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The MongoDB-compatible server: our own FerretDB, or MONGOPOOL_TEST_URL."""

    def __init__(self) -> None:
        self.url = os.environ.get("MONGOPOOL_TEST_URL")
        self.ferretdb = None
        if self.url:
            from pymongo.uri_parser_shared import _validate_uri

            self.ports = {port for _h, port in _validate_uri(self.url)["nodelist"]}
            self.name = "MongoDB at MONGOPOOL_TEST_URL"
        else:
            from django_mongopool.testing.ferretdb import VERSION, FerretDB

            data = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
            data_dir = (data / f"mongopool-bench-{uuid.uuid4().hex[:6]}") if data else None
            self.ferretdb = FerretDB(data_dir=data_dir).start()
            self.url, self.ports = self.ferretdb.url, {self.ferretdb.port}
            self.name = f"FerretDB {VERSION} (SQLite backend{', data on tmpfs' if data else ''})"

    def ferret_counts(self) -> tuple[float, float] | None:
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

    def rss_mb(self) -> float | None:
        if self.ferretdb is None:
            return None
        return psutil.Process(self.ferretdb.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        if self.ferretdb is not None:
            self.ferretdb.cleanup()
            import shutil

            shutil.rmtree(self.ferretdb.data_dir, ignore_errors=True)


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
        sampler = Sampler(server, process.pid)
        sampler.start()
        result = load(port, "/work", concurrency, requests)
        sampler.stop_event.set()
        sampler.join()
        after = server.ferret_counts()
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
    )
    return result


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
    per_round = []
    for round_no in range(rounds):
        order = variants[round_no % 3 :] + variants[: round_no % 3]
        got = {v: run_one(server, v, concurrency, requests)["throughput"] for v in order}
        for v in variants:
            seen[v].append(got[v])
        per_round.append(got)
    median = {v: round(statistics.median(values), 1) for v, values in seen.items()}
    return {
        "concurrency": concurrency,
        "rounds": rounds,
        "requests": requests,
        "throughput_median": median,
        "mongopool_vs_client_per_request": round(
            statistics.median(r["mongopool"] / r["client_per_request"] for r in per_round), 2
        ),
        "mongopool_vs_module_level_percent": round(
            (statistics.median(r["mongopool"] / r["module_level"] for r in per_round) - 1) * 100, 1
        ),
        "per_round": per_round,
    }


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    model = cpu
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def write_outputs(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "connections_throughput.png")


def markdown(results: dict) -> str:
    lines = [
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"{results['machine']['memory_gb']} GB; server: {results['server']}; web: waitress (uvicorn for mongopool_asgi), "
        f"{THREADS} threads, 1 process; maxPoolSize {POOL}; {results['requests']} requests per cell.",
        "",
        "| variant | concurrency | req/s | p50 ms | p99 ms | errors | peak conns (server) | peak conns (OS) | total conns opened | server RSS MB | web RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['variant']} | {r['concurrency']} | {r['throughput']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['errors']} | {r['peak_connections_server'] if r['peak_connections_server'] is not None else '-'} | "
            f"{r['peak_connections_os']} | {r['total_connections_server'] if r['total_connections_server'] is not None else r['distinct_client_sockets_os']} | "
            f"{r['peak_rss_mb_server'] if r['peak_rss_mb_server'] is not None else '-'} | {r['peak_rss_mb_web']} |"
        )
    if "ratios_at_64" in results:
        r = results["ratios_at_64"]
        lines.append(
            f"\nRepeated at concurrency {r['concurrency']} ({r['rounds']} interleaved rounds of "
            f"{r['requests']} requests): median req/s {r['throughput_median']}; django-mongopool is "
            f"{r['mongopool_vs_client_per_request']}x client-per-request and "
            f"{r['mongopool_vs_module_level_percent']:+}% against module-level."
        )
    for name, note in results.get("skipped", {}).items():
        lines.append(f"\n{name}: {note}")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--smoke", action="store_true", help="mongopool only, c=4, 40 requests, quick extras"
    )
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument(
        "--merge", action="store_true", help="run only --variants and merge them into OUT's results"
    )
    parser.add_argument(
        "--ratios-only", action="store_true", help="only redo the repeated c=64 comparison in OUT"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.concurrency, args.variants = 40, "4", "mongopool"
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    skipped = {}
    if "mongoengine" in variants and (reason := mongoengine_available()):
        variants.remove("mongoengine")
        skipped["mongoengine"] = reason

    server = Server()
    if args.ratios_only:
        try:
            results = json.loads((Path(args.out) / "results.json").read_text())
            results["ratios_at_64"] = ratios(server, 64, 5, 1000)
        finally:
            server.stop()
        write_outputs(results, Path(args.out))
        print(json.dumps(results["ratios_at_64"], indent=2))
        return 0
    if args.merge:
        try:
            results = json.loads((Path(args.out) / "results.json").read_text())
            runs = [r for r in results["runs"] if r["variant"] not in variants]
            for concurrency in concurrencies:
                for variant in variants:
                    print(
                        f"  {variant} at concurrency {concurrency} ...", file=sys.stderr, flush=True
                    )
                    runs.append(run_one(server, variant, concurrency, args.requests))
            results["runs"] = sorted(
                runs, key=lambda r: (VARIANTS.index(r["variant"]), r["concurrency"])
            )
        finally:
            server.stop()
        write_outputs(results, Path(args.out))
        return 0
    try:
        runs = []
        for index, concurrency in enumerate(concurrencies):
            order = variants[index % len(variants) :] + variants[: index % len(variants)]
            for variant in order:
                print(f"  {variant} at concurrency {concurrency} ...", file=sys.stderr, flush=True)
                runs.append(run_one(server, variant, concurrency, args.requests))
        rounds = 4 if args.smoke else 30
        results = {
            "machine": machine(),
            "server": server.name,
            "requests": args.requests,
            "threads": THREADS,
            "max_pool_size": POOL,
            "runs": sorted(runs, key=lambda r: (VARIANTS.index(r["variant"]), r["concurrency"])),
            "skipped": skipped,
            "middleware_overhead": overhead(
                server, rounds, 50 if args.smoke else 300, 5 if args.smoke else 40
            ),
            "middleware_overhead_http": http_overhead(
                server, 2 if args.smoke else 12, 200 if args.smoke else 2000
            ),
            "time_to_503": time_to_503(server),
            "ratios_at_64": ratios(server, 64, 1 if args.smoke else 5, 40 if args.smoke else 1000),
        }
    finally:
        server.stop()
    write_outputs(results, Path(args.out))
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to 503 on a saturated pool, for a view that reads first and one that writes first.

pymongo retries a retryable read once after a check-out timeout, and the retry waits for a
connection again: a read's 503 comes after about 2 x waitQueueTimeoutMS, a write's after
1 x. Both paths run through MongoSessionMiddleware in-process (Django's WSGI handler, as in
bench/overhead.py), alternately, against one connection held checked out (maxPoolSize 1; the
held command is blocked by a command listener until the end, so no timing decides it). Prints
JSON: per path the median and max milliseconds to the 503, and what the app's figures counted
for it (failed check-outs, check-out timeouts, 503s), with W002's stated worst waits.

    .venv/bin/python bench/checkout_wait.py                      # waitQueueTimeoutMS 200, 5 rounds
    .venv/bin/python bench/checkout_wait.py --wait-ms 500 --rounds 9
    MONGOPOOL_TEST_URL=mongodb://... .venv/bin/python bench/checkout_wait.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class Gate:
    """A command listener holding commands tagged comment="hold" until released."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()

    def started(self, event) -> None:
        if event.command.get("comment") == "hold":
            self.holding.set()
            self.release.wait(120)

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def read_first(request):
    from django.http import HttpResponse

    from django_mongopool import get_database

    get_database()["items"].find_one({}, session=request.mongo_session)
    return HttpResponse("ok")


def write_first(request):
    from django.http import HttpResponse

    from django_mongopool import get_database

    get_database()["items"].insert_one({"at": time.time()}, session=request.mongo_session)
    return HttpResponse("ok")


def _urlpatterns() -> list:
    from django.urls import path

    return [path("read", read_first), path("write", write_first)]


def _start_response(status, headers, exc_info=None):
    return None


def measure(wait_ms: int, rounds: int) -> dict:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory
    from django.test.utils import override_settings
    from pymongo import monitoring

    from django_mongopool import get_database
    from django_mongopool.checks import checkout_waits_ms
    from django_mongopool.client import pools
    from django_mongopool.client.process import get_config

    class Listener(Gate, monitoring.CommandListener):
        pass

    gate = Listener()
    options = {"maxPoolSize": 1, "waitQueueTimeoutMS": wait_ms, "event_listeners": [gate]}
    with override_settings(MONGOPOOL_CLIENT_OPTIONS=options, ROOT_URLCONF=__name__):
        handler = WSGIHandler()
        collection = get_database()["items"]
        collection.insert_one({"warm": True})  # discovery done, the one connection exists
        holder = threading.Thread(target=lambda: collection.find_one({}, comment="hold"))
        holder.start()
        if not gate.holding.wait(30):
            raise SystemExit("the held command never started")
        factory = RequestFactory()
        results: dict = {}
        try:
            for _ in range(rounds):
                for name in ("read", "write"):
                    before = pools.snapshot()
                    environ = factory.get(f"/{name}").environ
                    started = time.perf_counter()
                    status = {}

                    def start_response(code, headers, exc_info=None, status=status):
                        status["code"] = int(code.split()[0])

                    response = handler(environ, start_response)
                    b"".join(response)
                    elapsed = (time.perf_counter() - started) * 1000
                    response.close()
                    after = pools.snapshot()
                    entry = results.setdefault(
                        name,
                        {"ms": [], "statuses": [], "failed_checkouts": 0, "checkout_timeouts": 0,
                         "responses_503": 0},
                    )  # fmt: skip
                    entry["ms"].append(elapsed)
                    entry["statuses"].append(status.get("code"))
                    entry["failed_checkouts"] += sum(
                        s.checkout_failures.get("timeout", 0) for s in after.servers
                    ) - sum(s.checkout_failures.get("timeout", 0) for s in before.servers)
                    entry["checkout_timeouts"] += (
                        after.as_dict()["checkout_timeouts"] - before.as_dict()["checkout_timeouts"]
                    )
                    entry["responses_503"] += (
                        after.unavailable_responses - before.unavailable_responses
                    )
        finally:
            gate.release.set()
            holder.join()
        read_ms, write_ms = checkout_waits_ms(get_config())
    for entry in results.values():
        times = entry.pop("ms")
        entry["median_ms"] = round(statistics.median(times), 1)
        entry["max_ms"] = round(max(times), 1)
    return {
        "maxPoolSize": 1,
        "waitQueueTimeoutMS": wait_ms,
        "rounds": rounds,
        "w002_worst_wait_ms": {"read": read_ms, "write": write_ms},
        **results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait-ms", type=int, default=200, help="waitQueueTimeoutMS")
    parser.add_argument("--rounds", type=int, default=5, help="503s per path")
    args = parser.parse_args()

    from servers import Server, machine

    server = Server("plain")
    try:
        os.environ["BENCH_URL"] = server.url
        os.environ["BENCH_DB"] = f"bench_checkout_wait_{uuid.uuid4().hex[:6]}"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
        os.environ.setdefault("BENCH_VARIANT", "mongopool")
        import django

        django.setup()
        globals()["urlpatterns"] = _urlpatterns()
        result = measure(args.wait_ms, args.rounds)
        from django_mongopool import get_client

        get_client().drop_database(os.environ["BENCH_DB"])
    finally:
        server.stop()
    print(json.dumps({"server": server.name, "machine": machine(), **result}, indent=2))


if __name__ == "__main__":
    main()

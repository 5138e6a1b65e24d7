"""The middleware's own cost, measured in-process through Django's WSGI handler.

Two handlers are built from the same settings, one with MongoSessionMiddleware and
one without, and called alternately (A/B, then B/A) in rounds, so drift on a noisy
machine hits both sides alike. Prints JSON: per-request microseconds and the
median over rounds of (with / without - 1).

    BENCH_URL=mongodb://... python bench/overhead.py --rounds 30 --requests 300
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
os.environ.setdefault("BENCH_VARIANT", "mongopool")

import django  # noqa: E402

django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

MIDDLEWARE = "django_mongopool.middleware.MongoSessionMiddleware"


def _handler(with_middleware: bool) -> WSGIHandler:
    with override_settings(MIDDLEWARE=[MIDDLEWARE] if with_middleware else []):
        return WSGIHandler()


def _start_response(status, headers, exc_info=None):
    return None


def _time(handler: WSGIHandler, path: str, count: int) -> float:
    factory = RequestFactory()
    environs = [factory.get(path).environ for _ in range(count)]
    started = time.perf_counter()
    for environ in environs:
        response = handler(environ, _start_response)
        b"".join(response)
        response.close()
    return (time.perf_counter() - started) / count * 1e6


def measure(rounds: int, requests: int, mongo_requests: int) -> dict:
    with_mw, without_mw = _handler(True), _handler(False)
    cases = {
        "no_mongodb": ("/noop", "/noop", requests),
        "with_mongodb": ("/touch-mw", "/touch-plain", mongo_requests),
    }
    results = {}
    for case, (path_with, path_without, requests) in cases.items():
        _time(with_mw, path_with, 50)
        _time(without_mw, path_without, 50)
        ratios, a_times, b_times = [], [], []
        for round_no in range(rounds):
            order = [(True, path_with), (False, path_without)]
            if round_no % 2:
                order.reverse()
            timings = {}
            for flag, path in order:
                timings[flag] = _time(with_mw if flag else without_mw, path, requests)
            a_times.append(timings[True])
            b_times.append(timings[False])
            ratios.append(timings[True] / timings[False])
        results[case] = {
            "with_middleware_us": round(statistics.median(a_times), 1),
            "without_middleware_us": round(statistics.median(b_times), 1),
            "overhead_percent": round((statistics.median(ratios) - 1) * 100, 2),
            "rounds": rounds,
            "requests_per_round": requests,
        }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--mongo-requests", type=int, default=40)
    args = parser.parse_args()
    from django_mongopool import get_client, get_database

    try:
        print(json.dumps(measure(args.rounds, args.requests, args.mongo_requests)))
    finally:
        get_client().drop_database(get_database().name)

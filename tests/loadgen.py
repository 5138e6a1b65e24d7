"""Load from another process for the reliability tests: POSTs unique entries, records outcomes.

    python tests/loadgen.py --url http://127.0.0.1:PORT --workers 8 --seconds 20 --stop-file F --out F

Each worker posts {"id": uuid, ...} to /api/sign/ in a loop (new connection per request,
10 s timeout) until --seconds pass or the stop file exists. Writes a JSON list of
[id, status, started, seconds] (status 0 = no HTTP answer).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
import uuid
from urllib.parse import urlparse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--path", default="/api/sign/")
    args = parser.parse_args()
    target = urlparse(args.url)
    deadline = time.monotonic() + args.seconds
    results: list[list] = []
    issued = [0]
    lock = threading.Lock()

    def worker() -> None:
        while time.monotonic() < deadline and not os.path.exists(args.stop_file):
            with lock:
                if issued[0] >= args.max_requests:
                    return
                issued[0] += 1
            entry_id = uuid.uuid4().hex
            body = json.dumps({"id": entry_id, "name": "load", "message": "reliability"})
            started = time.time()
            clock = time.monotonic()
            status = 0
            try:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
                conn.request("POST", args.path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
                conn.close()
            except OSError:
                status = 0
            with lock:
                results.append([entry_id, status, started, round(time.monotonic() - clock, 4)])

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(args.out, "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main()

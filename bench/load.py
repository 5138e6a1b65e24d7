"""Closed-loop HTTP/1.1 load generator: C keep-alive connections, N requests in all.

    python bench/load.py --port 8000 --path /work --concurrency 64 --requests 2000

Prints one JSON object: requests, errors, statuses, seconds, throughput, p50/p99 ms.
Runs in its own process so it does not share the server's interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter


async def _one(reader, writer, request: bytes) -> tuple[int, bool]:
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length, close, chunked = 0, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "connection" and value.strip().lower() == "close":
            close = True
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:  # uvicorn streams responses without Content-Length
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


async def run(
    host: str, port: int, path: str, concurrency: int, total: int, timeout: float
) -> dict:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    remaining = [total]

    async def worker() -> None:
        reader = writer = None
        while remaining[0] > 0:
            remaining[0] -= 1
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), timeout
                    )
                status, close = await asyncio.wait_for(_one(reader, writer, request), timeout)
                statuses[str(status)] += 1
                if close:
                    writer.close()
                    writer = None
            except (
                TimeoutError,
                OSError,
                ValueError,
                IndexError,
                asyncio.IncompleteReadError,
            ) as exc:
                statuses[type(exc).__name__] += 1
                if writer is not None:
                    writer.close()
                writer = None
            latencies.append((time.perf_counter() - started) * 1000)
        if writer is not None:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0

    ok = sum(n for s, n in statuses.items() if s.startswith("2"))
    return {
        "requests": len(latencies),
        "ok": ok,
        "errors": len(latencies) - ok,
        "statuses": dict(statuses),
        "seconds": round(seconds, 3),
        "throughput": round(len(latencies) / seconds, 1) if seconds else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/work")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    result = asyncio.run(
        run(args.host, args.port, args.path, args.concurrency, args.requests, args.timeout)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

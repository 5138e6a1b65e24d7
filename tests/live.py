"""Real servers of the example project for the reliability tests (waitress or gunicorn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import MANAGE, closed_port, run_manage, wait_until_answering

TOKEN = "reliability-tests-metrics-token"
STARTUP_SECONDS = 60  # from launch to the first answer; then the server counts as not starting


class ExampleServer:
    """The example project in its own process(es), talking to ``mongo_url``."""

    def __init__(
        self,
        mongo_url: str,
        tmp_path: Path,
        *,
        workers: int = 0,
        threads: int = 8,
        asgi: bool = False,
        **env: str,
    ):
        self.asgi = asgi
        self.port = closed_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.threads = threads
        self.log = tmp_path / f"web-{self.port}.log"
        self.env = {
            "MONGODB_URL": mongo_url,
            "MONGODB_DATABASE": f"live_{uuid.uuid4().hex[:8]}",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
            "MONGOPOOL_METRICS_TOKEN": TOKEN,
            "MONGODB_HEARTBEAT_SECONDS": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ExampleServer:
        result = run_manage("migrate", "--noinput", **self.env)
        assert result.returncode == 0, result.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONGODB_")}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.update(self.env)
        if self.asgi:
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--no-access-log",
                "example_project.asgi:application",
            ]
        elif self.workers:
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "--preload",
                f"--workers={self.workers}",
                f"--threads={self.threads}",
                "--worker-class=gthread",
                f"--bind=127.0.0.1:{self.port}",
                "--graceful-timeout=5",
                "example_project.wsgi:application",
            ]
        else:
            command = [
                sys.executable,
                "-m",
                "waitress",
                f"--listen=127.0.0.1:{self.port}",
                f"--threads={self.threads}",
                "example_project.wsgi:application",
            ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=MANAGE.parent, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:  # a 503 while the database is away is an answer
            wait_until_answering(
                self.base + "/mongopool/ready",
                self.process,
                self.log,
                any_status=True,
                seconds=STARTUP_SECONDS,
            )
        except RuntimeError:
            self.stop()
            raise
        return self

    def ready(self) -> int:
        try:
            return urllib.request.urlopen(self.base + "/mongopool/ready", timeout=10).status
        except urllib.error.HTTPError as exc:
            return exc.code

    def get(self, path: str) -> tuple[int, bytes, float]:
        started = time.monotonic()
        try:
            response = urllib.request.urlopen(self.base + path, timeout=30)
            return response.status, response.read(), time.monotonic() - started
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), time.monotonic() - started

    def metrics(self) -> dict[str, float]:
        """Summed Prometheus samples of the process that answers (one process: exact)."""
        request = urllib.request.Request(
            self.base + "/mongopool/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        text = urllib.request.urlopen(request, timeout=30).read().decode()
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals

    def pids(self) -> list[int]:
        import psutil

        assert self.process is not None
        parent = psutil.Process(self.process.pid)
        children = parent.children()
        return [c.pid for c in children] if self.workers else [parent.pid]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


class Load:
    """tests/loadgen.py in another process."""

    def __init__(
        self,
        base: str,
        tmp_path: Path,
        workers: int = 8,
        seconds: float = 60,
        path: str = "/api/sign/",
        max_requests: int = 20000,
    ) -> None:
        self.stop_file = tmp_path / f"stop-{uuid.uuid4().hex[:6]}"
        self.out = tmp_path / f"load-{uuid.uuid4().hex[:6]}.json"
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parent / "loadgen.py"),
                "--url",
                base,
                "--workers",
                str(workers),
                "--seconds",
                str(seconds),
                "--stop-file",
                str(self.stop_file),
                "--out",
                str(self.out),
                "--path",
                path,
                "--max-requests",
                str(max_requests),
            ],
        )

    def finish(self) -> list[list]:
        self.stop_file.touch()
        self.process.wait(timeout=120)
        return json.loads(self.out.read_text())

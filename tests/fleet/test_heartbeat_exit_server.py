"""At interpreter exit the heartbeat thread stops before the client is closed: no
"Heartbeat skipped: InvalidOperation: Cannot use MongoClient after close"."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.server]

# The check registered first runs last at exit: after the app's own exit hooks have closed
# the clients, it gives a publisher that is still running the time to beat once more.
SCRIPT = textwrap.dedent(
    """
    import atexit, logging, os, sys, time

    publishers = []

    def after_the_app_closed_its_clients():
        if not publishers:
            return
        publisher = publishers[0]
        failures = publisher.failures
        deadline = time.monotonic() + 20
        while publisher.is_alive() and publisher.failures == failures:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        print(f"thread alive after the clients closed: {publisher.is_alive()}", file=sys.stderr)

    atexit.register(after_the_app_closed_its_clients)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    django.setup()
    from django.test.utils import override_settings
    override_settings(
        MONGOPOOL_URI=sys.argv[1],
        MONGOPOOL_DATABASE=sys.argv[2],
        MONGOPOOL_HEARTBEAT_SECONDS=1,
        MONGOPOOL_FLEET_BUDGET=100,
    ).enable()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    from django_mongopool.fleet import heartbeat
    publisher = heartbeat.ensure_started()
    assert heartbeat.wait_for_beats(2), "no beat"
    publishers.append(publisher)
    print("beaten", flush=True)
    """
)


def test_no_heartbeat_error_at_interpreter_exit(mongo, settings):
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, settings.MONGOPOOL_URI, settings.MONGOPOOL_DATABASE],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "beaten"
    assert "thread alive after the clients closed: False" in done.stderr
    assert "Cannot use MongoClient after close" not in done.stderr
    assert "Heartbeat" not in done.stderr, done.stderr

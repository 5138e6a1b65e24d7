"""Settings of the benchmark site: one view, five ways of reaching MongoDB (BENCH_VARIANT)."""

import os

SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "benchsite.urls"
DATABASES: dict = {}
INSTALLED_APPS = ["django_mongopool"]

VARIANT = os.environ.get("BENCH_VARIANT", "mongopool")
MIDDLEWARE = (
    ["django_mongopool.middleware.MongoSessionMiddleware"]
    if os.environ.get("BENCH_MIDDLEWARE", "1" if VARIANT.startswith("mongopool") else "0") == "1"
    else []
)

BENCH_URL = os.environ.get("BENCH_URL", "mongodb://127.0.0.1:27017/")
BENCH_DB = os.environ.get("BENCH_DB", "bench")
BENCH_POOL = int(os.environ.get("BENCH_POOL", "10"))

MONGOPOOL_URI = BENCH_URL
MONGOPOOL_DATABASE = BENCH_DB
MONGOPOOL_STRAY_CLIENTS = "off"  # the other variants build their own clients on purpose
MONGOPOOL_CLIENT_OPTIONS = {
    "maxPoolSize": BENCH_POOL,
    "waitQueueTimeoutMS": int(os.environ.get("BENCH_WAIT_QUEUE_TIMEOUT_MS", "10000")),
    "appname": "bench-mongopool",
}
if os.environ.get("BENCH_HOLD_MS"):
    from benchsite.hold import HoldListener

    MONGOPOOL_CLIENT_OPTIONS["event_listeners"] = [HoldListener(int(os.environ["BENCH_HOLD_MS"]))]

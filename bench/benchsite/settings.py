"""Settings of the benchmark site: one view, several ways of reaching MongoDB (BENCH_VARIANT)."""

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
# The ORM variants: the same insert + _id lookup through Django's ORM on django-mongodb-backend,
# with its own client (orm_stock) or on the app's client (orm_pooled).
if VARIANT in ("orm_stock", "orm_pooled"):
    INSTALLED_APPS = [*INSTALLED_APPS, "benchsite"]
    DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
    DATABASES = {
        "default": (
            {
                "ENGINE": "django_mongodb_backend",
                "HOST": BENCH_URL,
                "NAME": BENCH_DB,
                "OPTIONS": {"maxPoolSize": BENCH_POOL, "appname": "bench-orm-stock"},
            }
            if VARIANT == "orm_stock"
            else {"ENGINE": "django_mongopool.backends.mongodb"}
        )
    }

if os.environ.get("BENCH_HOLD_MS"):
    from benchsite.hold import HoldListener

    MONGOPOOL_CLIENT_OPTIONS["event_listeners"] = [HoldListener(int(os.environ["BENCH_HOLD_MS"]))]

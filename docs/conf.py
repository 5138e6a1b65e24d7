"""Sphinx configuration of django-mongopool's documentation (docs/README.md says how to build it)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

# autodoc imports the package's modules, some of which need Django's app registry: a minimal
# configuration (nothing connects: the client is built on first use, and autodoc uses none).
settings.configure(
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django_mongopool",
    ],
    MIDDLEWARE=["django_mongopool.middleware.MongoSessionMiddleware"],
    MONGOPOOL_URI="mongodb://127.0.0.1:27017/docs",
    SECRET_KEY="the documentation build",
    USE_TZ=True,
)
django.setup()

import django_mongopool  # noqa: E402

project = "django-mongopool"
author = "django-mongopool developers"
copyright = "django-mongopool developers"  # noqa: A001 (Sphinx's name)
release = version = django_mongopool.__version__

extensions = ["sphinx.ext.autodoc", "myst_parser", "mongopool_settings"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
source_suffix = {".md": "markdown"}
root_doc = "index"
# docs/README.md is for contributors; _build is where a local build goes.
exclude_patterns = ["_build", "README.md", "_ext"]

# Headings up to ### get anchors, so pages link to each other's sections (a missing anchor is
# a warning, and the build treats warnings as errors).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

html_theme = "furo"
html_title = f"django-mongopool {release}"
html_static_path: list[str] = []
# No JavaScript from a CDN: Furo ships its own files, and no page uses math (MathJax).
html_permalinks = True
# Straight quotes: the pages quote messages, settings and code as they are written.
smartquotes = False

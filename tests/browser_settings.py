"""The example project's settings plus a strict Content-Security-Policy (for the browser test):
Django's own CSP middleware on Django 6.0+, a test-only one on 5.2 (tests/csp.py)."""

from example_project.settings import *  # noqa: F403
from example_project.settings import MIDDLEWARE

from tests import csp

MIDDLEWARE = [*MIDDLEWARE, csp.MIDDLEWARE]
SECURE_CSP = csp.SECURE_CSP

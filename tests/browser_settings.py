"""The example project's settings plus a strict Content-Security-Policy (for the browser test)."""

from example_project.settings import *  # noqa: F403
from example_project.settings import MIDDLEWARE

MIDDLEWARE = [*MIDDLEWARE, "tests.csp.ContentSecurityPolicyMiddleware"]

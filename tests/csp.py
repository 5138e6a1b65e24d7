"""A strict Content-Security-Policy header on every response, for the browser test.

On Django 6.0+ it is Django's own ``ContentSecurityPolicyMiddleware`` configured by
``SECURE_CSP``; Django 5.2 has no CSP support, so there a test-only middleware sets the same header.
"""

from __future__ import annotations

from collections.abc import Callable

import django
from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = "script-src 'self'; style-src 'self'"
DJANGO_HAS_CSP = django.VERSION >= (6, 0)

if DJANGO_HAS_CSP:
    from django.utils.csp import CSP

    MIDDLEWARE = "django.middleware.csp.ContentSecurityPolicyMiddleware"
    SECURE_CSP = {"script-src": [CSP.SELF], "style-src": [CSP.SELF]}
else:
    MIDDLEWARE = "tests.csp.ContentSecurityPolicyMiddleware"
    SECURE_CSP = {}


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

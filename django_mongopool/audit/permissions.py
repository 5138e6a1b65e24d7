"""Who may see pool health: active staff with ``django_mongopool.view_pool_health``."""

from __future__ import annotations

import hmac
from typing import Any

from django.http import HttpRequest

from django_mongopool.conf import conf

PERMISSION = "django_mongopool.view_pool_health"


def can_view_pool(user: Any) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(PERMISSION)
    )


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def configured_token() -> str | None:
    """``MONGOPOOL_METRICS_TOKEN``, or None when no token is set."""
    return conf.metrics_token or None


def token_matches(token: str) -> bool:
    expected = configured_token()
    return expected is not None and hmac.compare_digest(token.encode(), expected.encode())

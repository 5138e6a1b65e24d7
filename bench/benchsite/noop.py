"""A middleware that does nothing but call the next one: what any middleware costs in Django."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class NoopMiddleware:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

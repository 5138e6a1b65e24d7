"""Regression tests for issue 12 (hardening) that need no server."""

from __future__ import annotations

import pytest
from django.test import Client

from django_mongopool.stray import StrayClientError, StrayClientWarning

# --- 13: a stray client is reported once per source location (every time in "raise") ---


def test_stray_client_per_request_warns_once_per_line(settings, recwarn):
    settings.MONGOPOOL_STRAY_CLIENTS = "warn"
    for _ in range(5):
        assert Client().get("/t/stray/").status_code == 200
    stray = [w for w in recwarn if issubclass(w.category, StrayClientWarning)]
    assert len(stray) == 1, [str(w.message) for w in stray]


def test_stray_client_raise_mode_refuses_every_time(settings):
    settings.MONGOPOOL_STRAY_CLIENTS = "raise"
    for _ in range(3):
        with pytest.raises(StrayClientError):
            Client().get("/t/stray/")

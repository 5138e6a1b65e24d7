"""Sessions user code leaves open are found: in a thread the view spawned, in a streamed response, at
the line that started them."""

from __future__ import annotations

import gc

import pytest
from django.test import Client

from django_mongopool.exceptions import LeakedSessionError

# --- sessions started in a thread the view spawned are found ---


def _thread_leak_line() -> int:
    import inspect

    from tests import failure_urls

    lines = inspect.getsource(failure_urls).splitlines()
    return next(n for n, line in enumerate(lines, start=1) if "# THREAD-LEAK-LINE" in line)


@pytest.mark.urls("tests.failure_urls")
def test_a_session_leaked_in_a_plain_thread_is_reported_at_its_line(settings, offline):
    from django_mongopool.client import pools
    from django_mongopool.exceptions import LeakedSessionWarning

    settings.DEBUG = True
    before = pools.snapshot().leaked_sessions
    with pytest.warns(LeakedSessionWarning, match="outside any request") as caught:
        assert Client().get("/h/thread-leak/").status_code == 200
        gc.collect()
    assert caught[0].filename.endswith("failure_urls.py")
    assert caught[0].lineno == _thread_leak_line()
    assert pools.snapshot().leaked_sessions == before + 1


@pytest.mark.urls("tests.failure_urls")
def test_a_thread_given_the_request_context_is_tracked_with_the_request(settings, offline):
    from django_mongopool.exceptions import LeakedSessionWarning

    settings.DEBUG = True
    with pytest.warns(LeakedSessionWarning, match="during GET /h/thread-with-context/") as caught:
        assert Client().get("/h/thread-with-context/").status_code == 200
    assert caught[0].lineno == _thread_leak_line()
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"
    with pytest.raises(LeakedSessionError):
        Client().get("/h/thread-with-context/")


@pytest.mark.urls("tests.failure_urls")
def test_a_session_leaked_while_a_stream_is_sent_is_reported_when_it_ends(settings, offline):
    from django_mongopool.exceptions import LeakedSessionWarning

    settings.DEBUG = True
    response = Client().get("/h/stream-leak/")
    with pytest.warns(LeakedSessionWarning, match="during a streamed response") as caught:
        assert b"".join(response.streaming_content) == b"first\nsecond\n"
    assert caught[0].lineno == _thread_leak_line()


@pytest.mark.urls("tests.failure_urls")
def test_sessions_ended_in_threads_are_not_reported(settings, offline, recwarn):
    settings.DEBUG = True
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"
    assert Client().get("/h/thread-with-context/?end=1").status_code == 200
    gc.collect()
    assert not recwarn.list


def _site_and_line():
    """The caller's leak site, and the line its frame reports at the same moment."""
    import sys

    from django_mongopool.guards import leaks

    caller = sys._getframe(1)
    return leaks.site(caller), caller.f_lineno


def test_a_leak_site_resolves_to_the_line_the_frame_reports():
    """Leak sites are kept as code + byte offset and turned into a line only when reported."""
    from django_mongopool.guards import leaks

    where, lineno = _site_and_line()
    spread = _site_and_line(
        # a call over several lines
    )
    in_comprehension = [_site_and_line() for _ in range(1)][0]
    keyword = dict(value=_site_and_line())["value"]
    for site, expected in (
        (where, lineno),
        spread,
        in_comprehension,
        keyword,
    ):
        assert leaks.line(site[0], site[1]) == expected
        assert site[2] == __name__
    tracked = leaks.Tracked(None, where)
    assert (tracked.filename, tracked.lineno, tracked.module) == (__file__, lineno, __name__)

"""Every exception and warning class django-mongopool raises."""

from __future__ import annotations


class StrayClientWarning(RuntimeWarning):
    """A MongoClient was built outside django-mongopool."""


class StrayClientError(RuntimeError):
    """A MongoClient was built outside django-mongopool while MONGOPOOL_STRAY_CLIENTS = 'raise'."""


class LeakedSessionWarning(RuntimeWarning):
    """A session started during a request was not ended by the end of that request."""


class LeakedSessionError(RuntimeError):
    """Raised at the end of a request that leaked a session, when MONGOPOOL_LEAKED_SESSIONS = 'raise'."""


class TransactionsNotSupported(RuntimeError):
    """The server cannot run transactions (standalone); raised before any write."""


class MockTransactionsNotSupported(TransactionsNotSupported):
    """A transaction was started in the mongomock tier, which has none."""


class ServerUnreachableInTests(RuntimeError):
    """Raised by the pytest plugin instead of a 503 when a test's request cannot reach MongoDB."""

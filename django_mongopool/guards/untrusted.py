"""Reading what others wrote: a server's replies and the fleet's heartbeat documents.

Nothing a server or another process wrote is trusted. Documents are decoded with
:data:`UNTRUSTED_CODEC_OPTIONS` (a bad date or bad UTF-8 does not fail the whole read), and
every number is taken through :func:`count`, which range-checks it where it is read, so no
later sum, ratio or ``float()`` can overflow. A value that does not fit raises
:class:`Unreadable`; the reader counts or notes it and goes on: it is never fatal.
"""

from __future__ import annotations

from typing import Any

from bson.codec_options import CodecOptions, DatetimeConversion

# How documents written by others are decoded: a date outside Python's range stays a
# DatetimeMS (and is then refused as a date) and invalid UTF-8 is replaced, instead of
# failing the whole read with InvalidBSON.
UNTRUSTED_CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True,
    unicode_decode_error_handler="replace",
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)

# What pymongo raises, besides PyMongoError and BSONError, on a reply that is not shaped as the
# command's reply must be (no "cursor", a "firstBatch" that is not a list, documents that are
# not documents): a hostile or broken server. Callers treat them as a failed read.
MALFORMED_REPLY_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)

# The largest count believed: the largest integer a float (and a JSON reader) holds exactly.
MAX_COUNT = 2**53 - 1
COUNT_RANGE = f"a whole number from 0 to {MAX_COUNT}"


class Unreadable(ValueError):
    """A value from outside that this app cannot take: a wrong type, or out of its range."""


def count(value: Any, high: int = MAX_COUNT, *, whole_floats: bool = False) -> int:
    """``value`` as a whole number from 0 to ``high``, else :class:`Unreadable`.

    A bool never counts. A float counts only with ``whole_floats`` (a server may send a
    count as a double) and only when it is whole: NaN, the infinities and 2.5 do not.
    """
    if isinstance(value, bool):
        raise Unreadable(value)
    if isinstance(value, float):
        if not whole_floats or not value.is_integer():
            raise Unreadable(value)
    elif not isinstance(value, int):
        raise Unreadable(value)
    if not 0 <= value <= high:
        raise Unreadable(value)
    return int(value)

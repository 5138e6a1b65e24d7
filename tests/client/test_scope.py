"""The request's (or a block's) scope: the sessions it tracks."""

from __future__ import annotations


def test_nested_tracking_blocks_keep_the_outer_one_whole(offline):
    from django_mongopool.client.process import get_client
    from django_mongopool.client.scope import tracking

    client = get_client()
    with tracking() as outer:
        with tracking() as inner:
            first = client.start_session()
        second = client.start_session()
    assert [t.session for t in inner] == [first]
    assert [t.session for t in outer] == [first, second]  # the outer block saw both
    first.end_session()
    second.end_session()

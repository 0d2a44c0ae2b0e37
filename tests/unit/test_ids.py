"""``new_id``: the identifiers of snapshots and activities."""

import time

from snapkeep.ids import new_id


def test_ids_are_short_unique_and_sort_by_creation_time():
    a = new_id()
    time.sleep(0.002)
    b = new_id()
    assert len(a) == 16 and a.isalnum() and (a.islower() or a.isdigit())
    assert a < b
    assert len({new_id() for _ in range(100_000)}) == 100_000

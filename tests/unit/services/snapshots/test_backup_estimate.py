"""A re-snapshot's progress total comes from the previous snapshot, not a second walk."""

import pytest

from snapkeep.services.snapshots.backup import _estimate


def test_the_previous_snapshots_bytes_are_the_estimate():
    assert _estimate({"kind": "volume", "bytes": 1234}) == 1234


@pytest.mark.parametrize("parent", [None, {}, {"bytes": 0}, {"bytes": "12"}, {"bytes": -3},
                                    {"bytes": 1.5}, []])
def test_without_a_usable_previous_size_the_mount_is_measured(parent):
    assert _estimate(parent) == 0

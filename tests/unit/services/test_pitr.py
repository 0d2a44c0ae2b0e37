"""``--at`` values (services/pitr.py): every accepted form, and one line for the rest."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest

from snapkeep.errors import UsageError
from snapkeep.services.pitr import parse_at


def test_times_with_an_offset_or_z_are_utc_whole_seconds():
    want = datetime(2026, 12, 5, 10, 19, 59, tzinfo=UTC)
    assert parse_at("2026-12-05T10:19:59Z").time == want
    assert parse_at("2026-12-05T11:19:59+01:00").time == want
    assert parse_at("2026-12-05T10:19:59.700Z").time == want  # the fraction is dropped
    assert parse_at(" 2026-12-05 10:19:59z ").time == want
    assert parse_at("2026-12-05T10:19:59Z").gtid is None


def test_a_naive_time_is_in_this_machines_zone():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        assert parse_at("2026-12-05 11:19:59").time == datetime(2026, 12, 5, 10, 19, 59,
                                                                 tzinfo=UTC)
    finally:
        if old is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_a_gtid_is_a_gtid():
    p = parse_at("0-1-4711")
    assert p.gtid == "0-1-4711" and p.time is None
    assert p.stop().after_gtid == "0-1-4711" and p.stop().before_time is None
    assert parse_at("2-10-007").gtid == "2-10-7"


@pytest.mark.parametrize("value", ["", "yesterday", "0-1", "2026-13-01T00:00:00Z",
                                   "0-1-2-3", "10:19"])
def test_anything_else_is_refused_naming_the_forms(value):
    with pytest.raises(UsageError, match="neither a time nor a GTID") as e:
        parse_at(value)
    assert "\n" not in str(e.value) and "0-1-4711" in str(e.value)

"""Activity types are looked up in a registry, each registered once
(services/activities/registry.py, runners.py)."""

from __future__ import annotations

import pytest

from snapkeep.errors import UsageError
from snapkeep.services.activities import info, operations, registry
from snapkeep.services.snapshots import drill
from snapkeep.services.transfer import export_import as transfer


def test_every_type_snapkeep_starts_has_a_runner():
    assert operations  # imported: its import registers snapkeep's types
    for name in (info.BACKUP, info.RESTORE, info.DELETE, info.EXPIRE, drill.VERIFY,
                 transfer.EXPORT, transfer.IMPORT):
        assert registry.lookup(name).name == name


def test_only_a_drill_skips_the_cleanup_of_killed_drills():
    assert not registry.lookup(drill.VERIFY).cleans_up_drills
    assert registry.lookup(info.BACKUP).cleans_up_drills


def test_an_unknown_type_is_an_error_naming_the_known_ones():
    with pytest.raises(UsageError) as e:
        registry.lookup("environment.backup.frobnicate")
    assert "'environment.backup.frobnicate'" in str(e.value)
    assert info.BACKUP in str(e.value) and drill.VERIFY in str(e.value)


def test_a_second_runner_for_a_taken_name_is_refused():
    taken = registry.lookup(info.BACKUP)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.ActivityType(info.BACKUP, taken.run))
    assert registry.register(taken) is taken  # the same one again changes nothing

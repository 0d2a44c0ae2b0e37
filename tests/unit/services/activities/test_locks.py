import time

from snapkeep.ids import new_id
from snapkeep.services.activities.locks import EnvironmentLock, is_locked


def test_ids_are_short_unique_and_sort_by_creation_time():
    a = new_id()
    time.sleep(0.002)
    b = new_id()
    assert len(a) == 16 and a.isalnum() and (a.islower() or a.isdigit())
    assert a < b
    assert len({new_id() for _ in range(100_000)}) == 100_000


def test_environment_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "locks" / "dev.lock"
    first = EnvironmentLock.try_acquire(path)
    assert first is not None
    assert EnvironmentLock.try_acquire(path) is None
    assert is_locked(path)
    first.release()
    assert not is_locked(path)

"""The environment lock: one activity per environment at a time (an exclusive flock)."""

from snapkeep.services.activities.locks import EnvironmentLock, is_locked


def test_environment_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "locks" / "dev.lock"
    first = EnvironmentLock.try_acquire(path)
    assert first is not None
    assert EnvironmentLock.try_acquire(path) is None
    assert is_locked(path)
    first.release()
    assert not is_locked(path)

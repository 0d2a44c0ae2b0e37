"""The staging writers own the descriptors of the files they fill: a failure of an earlier
write, found right after a file was handed to a writer, must not close that file's
descriptor under it (a CI run saw "Bad file descriptor" reported instead of the damaged
snapshot: the descriptor closed twice)."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from snapkeep.engines.volumes.staging import Builder
from snapkeep.engines.volumes.tree import FILE, Entry
from snapkeep.errors import IntegrityError
from tests.helpers.recording import Recorder


def test_an_earlier_failure_found_after_a_submit_leaves_the_file_to_its_writer(tmp_path, repo):
    staging = tmp_path / "staging"
    staging.mkdir()
    builder = Builder(staging, repo, Recorder())
    builder._writers = ThreadPoolExecutor(2, thread_name_prefix="snapkeep-restore")
    failed: Future[None] = Future()  # an earlier file's write, done and failed
    failed.set_exception(IntegrityError("an earlier file's chunk is damaged"))
    builder._pending.append(failed)
    content = os.urandom(3 << 20)
    entry = Entry(b"b", FILE, 0o644, 0, 0, 0, len(content), blob=repo.put_blob(content))
    fd = os.open(staging / "b", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with pytest.raises(IntegrityError, match="earlier file's chunk is damaged"):
        builder._submit_file(fd, entry)
    builder._writers.shutdown(wait=True)
    written = builder._pending[-1]
    assert written is not failed and written.exception() is None, written.exception()
    assert (staging / "b").read_bytes() == content  # filled and closed by its writer alone

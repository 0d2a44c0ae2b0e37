"""CPU seconds, page faults and peak RSS of writing row-like text through ``BlobWriter.write``
in 64 KiB pieces (the database dump's way into the repository), in one process.

    PYTHONPATH=OLD/src .venv/bin/python bench/blob_write.py [--mib 256]
    PYTHONPATH=NEW/src .venv/bin/python bench/blob_write.py [--mib 256]

Run each tree in turn (alternated) to A/B the write path without a database. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import tempfile

from snapkeep.malloc import bound_heap_growth
from snapkeep.repository import ROWS_ZSTD_LEVEL, Repository
from snapkeep.storage import LocalBackend

PIECE = 64 * 1024


def rows(seed: int) -> list[bytes]:
    """64 different 64 KiB pieces of SQL-like text (compressible, as rows are)."""
    rng = random.Random(seed)
    words = [b"INSERT", b"VALUES", b"(1,'abc',", b"'2026-01-01',", b"3.14)", b"lorem", b"ipsum"]
    text = b" ".join(rng.choice(words) + str(rng.randint(0, 10**6)).encode()
                     for _ in range(9000))[:PIECE]
    return [bytes([i % 251]) + text[1:] for i in range(64)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    bound_heap_growth()  # as the CLI and the worker do
    pieces = rows(1)
    work = tempfile.mkdtemp(prefix="snapkeep-blob-write-")
    try:
        repo = Repository.init(LocalBackend(f"{work}/repo"))
        before = resource.getrusage(resource.RUSAGE_SELF)
        w = repo.blob_writer(ROWS_ZSTD_LEVEL)
        for i in range(args.mib * 1024 * 1024 // PIECE):
            w.write(pieces[i % len(pieces)] + i.to_bytes(8, "little"))
        w.close()
        repo.flush()
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        shutil.rmtree(work)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"{cpu:.2f} CPU s  {after.ru_minflt - before.ru_minflt} page faults  "
          f"{after.ru_maxrss // 1024} MiB peak RSS")


if __name__ == "__main__":
    main()

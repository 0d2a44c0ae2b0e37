"""Split a py-spy speedscope profile of snapkeep into the stages of the file path.

    py-spy record --native -r 200 --format speedscope -o prof.ss -- python -m snapkeep ...
    .venv/bin/python bench/profile_split.py prof.ss

For each thread with samples, the share of its samples per stage: a sample counts for the
stage of its deepest frame that names one (so zstd's C code under ``chunks.encode`` is
"compress"). Stages: see ``STAGES``. Not part of the test suite.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

STAGES = [  # (stage, substrings of "function file" that mark it)
    ("start-up (imports)", ["_find_and_load"]),
    ("compress (zstd)", ["encode chunks.py", "compresses chunks.py"]),
    ("decompress (zstd)", ["decode chunks.py"]),
    ("decrypt (AES-GCM)", ["Keys.unseal"]),
    ("encrypt (AES-GCM)", ["Keys.seal"]),
    ("hash (BLAKE3 keyed id)", ["chunk_id"]),
    ("chunk (FastCDC)", ["cut_buf", "Chunker._cut", "Chunker.feed"]),
    ("read (pread)", ["Walk.copy", "pread"]),
    ("pack, upload, fsync", ["PackWriter", "PackBuilder", "build_pack", "LocalBackend"]),
    ("restore writers", ["Builder.write_file", "Builder._submit_file"]),
    ("old tree removal", ["_rmtree_safe_fd"]),
    ("catalog", ["catalog", "sqlalchemy"]),
    ("walk, tree", ["Walk.", "encode_entry", "decode_entry", "TreeDigest"]),
    ("waiting", ["Condition.wait", "_worker thread.py"]),
]


def stage(names: list[str]) -> str:
    for name in reversed(names):
        for label, marks in STAGES:
            if any(m in name for m in marks):
                return label
    return "other: " + next((n for n in reversed(names) if ".py" in n), "native")


def main(path: str) -> None:
    with open(path) as f:
        profile = json.load(f)
    frames = [f"{f['name']} {f.get('file', '').rsplit('/', 1)[-1]}"
              for f in profile["shared"]["frames"]]
    for thread in profile["profiles"]:
        counts = Counter(stage([frames[i] for i in s]) for s in thread["samples"] if s)
        total = sum(counts.values())
        if total < 50 or counts["waiting"] > 0.9 * total:
            continue
        print(f"{thread['name']}: {total} samples")
        for label, n in counts.most_common(14):
            print(f"  {100 * n / total:5.1f} %  {label}")


if __name__ == "__main__":
    main(sys.argv[1])
